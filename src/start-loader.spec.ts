import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  BUNDLE_HASH_MARK,
  BUNDLE_HEAD,
  BUNDLE_TAIL,
  bundleHash,
  cacheFileName,
  codeCacheDir,
  loadStart,
} from './start-loader';

/** A bundle as scripts/bundle.ts writes one: CommonJS wrapped as Node wraps it, then its hash line. */
function bundleSource(body: string, wrapped = true): string {
  const code = wrapped ? `${BUNDLE_HEAD}\n${body}\n${BUNDLE_TAIL}\n` : `${body}\n`;
  return `${code}${BUNDLE_HASH_MARK}${createHash('sha256').update(code).digest('hex')}\n`;
}

/** Enough functions for V8 to have something to cache, one of them called (compiled lazily) only after the load. */
const BODY = `
const path = require('node:path');
${Array.from({ length: 50 }, (_, i) => `function f${i}(x) { return x * ${i} + ${i}; }`).join('\n')}
module.exports = { where: path.basename(__filename), dir: __dirname, later: (x) => f7(x) + f49(x) };
`;

const run = promisify(execFile);

describe('start-loader: the bundle and its V8 code cache', () => {
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-loader-'));
    file = join(dir, 'start.bundle.js');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * Loads the bundle as the entry would, in a process of its own (V8 keeps what it compiled per process: a second
   * load here would find the first's code in memory, cache or not), then as a process that listens: the cache is
   * written soon after.
   */
  async function load(
    source: string,
    cacheDelayMs = 10,
  ): Promise<{ via: string; where: string; dir: string; later: number }> {
    writeFileSync(file, source);
    const script = `
      const { runBundle } = require(${JSON.stringify(join(__dirname, 'start-loader'))});
      const file = ${JSON.stringify(file)};
      const loaded = runBundle(file, require('node:fs').readFileSync(file, 'utf8'), { cacheDir: ${JSON.stringify(dir)}, cacheDelayMs: ${cacheDelayMs} });
      const { where, dir, later } = loaded.start;
      loaded.afterListen();
      setTimeout(() => process.stdout.write(JSON.stringify({ via: loaded.via, where, dir, later: later(2) })), 300);
    `;
    const { stdout } = await run(process.execPath, ['-r', 'ts-node/register/transpile-only', '-e', script]);
    return JSON.parse(stdout) as { via: string; where: string; dir: string; later: number };
  }
  const caches = (): string[] => readdirSync(dir).filter((f) => f.endsWith('.v8cache'));

  it("should run the bundle as Node runs a file (its own __filename, __dirname and require) and write V8's cache after the listen", async () => {
    const source = bundleSource(BODY);
    const first = await load(source);
    expect(first.via).toBe('bundle');
    expect(first.where).toBe('start.bundle.js');
    expect(first.dir).toBe(dir);
    expect(first.later).toBe(2 * 7 + 7 + 2 * 49 + 49);
    expect(caches()).toEqual([cacheFileName(bundleHash(source)!)]);
    const written = statSync(join(dir, caches()[0]));
    expect(written.size).toBeGreaterThan(0);
    expect(written.mode & 0o777).toBe(0o600);

    const second = await load(source);
    expect(second.via).toBe('bundle+cache');
    expect(second.later).toBe(2 * 7 + 7 + 2 * 49 + 49);
    // Used, so not written again.
    expect(statSync(join(dir, caches()[0])).mtimeMs).toBe(written.mtimeMs);
  });

  it('should never read the cache of another bundle, even one of the same length, and remove it once it writes its own', async () => {
    const a = bundleSource(BODY);
    const b = bundleSource(BODY.replace('x * 7 + 7', 'x * 8 + 7'));
    expect(b.length).toBe(a.length);
    await load(a);
    const other = await load(b);
    expect(other.via).toBe('bundle');
    expect(other.later).toBe(2 * 8 + 7 + 2 * 49 + 49);
    expect(caches()).toEqual([cacheFileName(bundleHash(b)!)]);
  });

  it('should start without a cache V8 rejects, and write a good one in its place', async () => {
    const source = bundleSource(BODY);
    await load(source);
    const cacheFile = join(dir, caches()[0]);
    const damaged = readFileSync(cacheFile);
    damaged.fill(0x5a, 16, 64);
    writeFileSync(cacheFile, damaged);
    const rejected = await load(source);
    expect(rejected.via).toBe('bundle');
    expect(rejected.later).toBe(2 * 7 + 7 + 2 * 49 + 49);
    expect((await load(source)).via).toBe('bundle+cache');
  });

  it('should run a bundle written without the wrapper too, wrapping it as Node does', async () => {
    const source = bundleSource(BODY, false);
    const first = await load(source);
    expect([first.via, first.where, first.dir, first.later]).toEqual([
      'bundle',
      'start.bundle.js',
      dir,
      2 * 7 + 7 + 2 * 49 + 49,
    ]);
    expect((await load(source)).via).toBe('bundle+cache');
  });

  it('should write the cache as the process exits when that comes before the delay', async () => {
    const source = bundleSource(BODY);
    expect((await load(source, 60_000)).via).toBe('bundle');
    expect(caches()).toEqual([cacheFileName(bundleHash(source)!)]);
    expect((await load(source, 60_000)).via).toBe('bundle+cache');
  });

  it('should keep no cache for a bundle without its hash line', async () => {
    const loaded = await load(`${BODY}\n`);
    expect(loaded.via).toBe('bundle');
    expect(loaded.where).toBe('start.bundle.js');
    expect(caches()).toEqual([]);
  });

  it("should read the hash from the bundle's last line only when it is one", () => {
    const hash = 'ab'.repeat(32);
    expect(bundleHash(`x\n${BUNDLE_HASH_MARK}${hash}\n`)).toBe(hash);
    expect(bundleHash(`x\n${BUNDLE_HASH_MARK}${hash.slice(2)}\n`)).toBeUndefined();
    expect(bundleHash('x\n')).toBeUndefined();
  });

  describe('where the cache is kept', () => {
    const uid = process.getuid?.() ?? 0;

    it("should keep it beside a bundle whose folder it may write, else in a 0700 folder of the user's own", () => {
      expect(codeCacheDir(dir)).toBe(dir);
      // A folder this process cannot write (even root cannot make a file in a folder that does not exist).
      const fallback = codeCacheDir(join(dir, 'missing'), dir);
      expect(fallback).toMatch(new RegExp(`^${dir}/fixitfy-upload-${uid}/[0-9a-f]{16}$`));
      expect(statSync(join(dir, `fixitfy-upload-${uid}`)).mode & 0o777).toBe(0o700);
      expect(statSync(fallback!).mode & 0o777).toBe(0o700);
      // Another release's bundle, another folder; the same bundle, the same one.
      expect(codeCacheDir(join(dir, 'other'), dir)).not.toBe(fallback);
      expect(codeCacheDir(join(dir, 'missing'), dir)).toBe(fallback);
    });

    it('should refuse a fallback folder that others may write, or a link in its place', () => {
      const shared = join(dir, `fixitfy-upload-${uid}`);
      mkdirSync(shared);
      chmodSync(shared, 0o777);
      expect(codeCacheDir(join(dir, 'missing'), dir)).toBeUndefined();
      rmSync(shared, { recursive: true });
      const elsewhere = mkdtempSync(join(dir, 'elsewhere-'));
      chmodSync(elsewhere, 0o700);
      symlinkSync(elsewhere, shared);
      expect(codeCacheDir(join(dir, 'missing'), dir)).toBeUndefined();
    });
  });

  it('should load src/start.ts as a module from the TypeScript sources, with nothing to do after the listen', async () => {
    const loaded = await loadStart(dir);
    expect(loaded.via).toBe('module');
    expect(typeof loaded.start.main).toBe('function');
    expect(loaded.afterListen()).toBeUndefined();
  });
});
