import ignore from '@balena/dockerignore';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(__dirname, '..', '..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
/** The .dockerignore as Docker (and dockerode) read it. */
const context = ignore().add(readFileSync(join(ROOT, '.dockerignore'), 'utf8'));

/** Sources of the COPY instructions that read the build context (not `--from=` another stage). */
const copiedFromContext = dockerfile
  .split('\n')
  .filter((line) => /^COPY\s/.test(line) && !line.includes('--from='))
  .flatMap((line) => line.trim().split(/\s+/).slice(1, -1))
  .filter((arg) => !arg.startsWith('--'));

/** Tracked files of the repository (what a fresh clone has). */
const tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter(Boolean);

describe('Docker build context (.dockerignore)', () => {
  it('should keep local state and secrets out of the context', () => {
    const secret = [
      'node_modules/sharp/package.json',
      'dist/src/main.js',
      'dist/model/nsfw-mobilenet-v2.onnx',
      'data/secret.key',
      'data/postgres/PG_VERSION',
      'data/images/ab/cd.png',
      'secret.key',
      'src/secret.key',
      '.env',
      '.git/HEAD',
      'coverage/lcov.info',
      '.tmp/moderation-cache/models/nsfw-mobilenet-v2.onnx',
      'npm-debug.log',
    ];
    expect(secret.filter((path) => !context.ignores(path))).toEqual([]);
  });

  it('should send every file the Dockerfile copies from the context, and no tests', () => {
    expect(copiedFromContext).toEqual(
      expect.arrayContaining(['package.json', 'src', 'migrations', 'scripts']),
    );
    for (const source of copiedFromContext) {
      const files = tracked.filter((f) => f === source || f.startsWith(`${source.replace(/\/$/, '')}/`));
      expect(files.length).toBeGreaterThan(0);
      const dropped = files.filter((f) => context.ignores(f) && !f.endsWith('.spec.ts'));
      expect({ source, dropped }).toEqual({ source, dropped: [] });
    }
    expect(tracked.filter((f) => f.startsWith('test/') && !context.ignores(f))).toEqual([]);
    expect(tracked.filter((f) => f.endsWith('.spec.ts') && !context.ignores(f))).toEqual([]);
  });
});
