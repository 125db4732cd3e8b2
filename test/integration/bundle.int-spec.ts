import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { BUNDLE_FILE, BUNDLE_HEAD, CACHE_DELAY_MS } from '../../src/start-loader';
import { WEB_DIST_DIR } from '../../src/modules/web/web-files';
import { Receiver } from '../e2e/webhooks-receiver';
import { jpeg, png } from '../fixtures/sample-images';
import { spawnedDeployment } from '../setup/spawned-deployment';
import { freePort } from '../setup/private-servers';
import { waitFor } from '../setup/wait';
import { ensureWebBuilt } from '../setup/web-build';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');

/**
 * `npm start` runs the service from one bundle of the built app with a V8 code cache (scripts/bundle.ts,
 * src/start-loader.ts), which the other suites (ts-jest on the sources) never load. This suite builds the app as
 * `npm run build` does, into a folder of its own, and runs it through every place where a bundle could break what
 * the sources do: the app's own files found by path (migrations, the model, the image thread, the heavy-image process,
 * the inference thread), packages that find theirs (Swagger UI's assets, the website), BullMQ's webhook deliveries,
 * and one copy of Nest per process.
 */
describe('npm start: the bundle of the built app, and its code cache', () => {
  const deployment = spawnedDeployment('bundle');
  let app = '';
  let modulesDir = '';
  let receiver: Receiver;

  beforeAll(async () => {
    ensureWebBuilt();
    app = mkdtempSync(join(tmpdir(), 'fxf-bundle-app-'));
    symlinkSync(join(ROOT, 'node_modules'), join(app, 'node_modules'));
    copyFileSync(join(ROOT, 'package.json'), join(app, 'package.json'));
    await run(
      join(ROOT, 'node_modules', '.bin', 'tsc'),
      ['-p', 'tsconfig.build.json', '--outDir', join(app, 'dist')],
      {
        cwd: ROOT,
      },
    );
    await run(process.execPath, [join(app, 'dist', 'scripts', 'build-model.js')], { cwd: app });
    await run(process.execPath, [join(app, 'dist', 'scripts', 'bundle.js')], { cwd: app });
    symlinkSync(WEB_DIST_DIR, join(app, 'dist', 'web'));
    modulesDir = mkdtempSync(join(tmpdir(), 'fxf-bundle-modules-'));
    // Every process that runs the entry lists the modules it loaded from files as it exits.
    writeFileSync(
      join(modulesDir, 'preload.js'),
      `const { writeFileSync } = require('node:fs');
       const { isMainThread } = require('node:worker_threads');
       process.on('exit', () => {
         if (isMainThread && process.argv[1] && process.argv[1].endsWith('main.js')) {
           writeFileSync(${JSON.stringify(modulesDir)} + '/' + process.pid + '.json', JSON.stringify(Object.keys(require.cache)));
         }
       });`,
    );
    receiver = await Receiver.start();
  }, 240_000);

  afterAll(async () => {
    await receiver?.close();
    rmSync(app, { recursive: true, force: true });
    rmSync(modulesDir, { recursive: true, force: true });
  });

  const main = (): string => join(app, 'dist', 'src', 'main.js');
  const cacheFiles = (): string[] =>
    readdirSync(join(app, 'dist', 'src')).filter((f) => f.endsWith('.v8cache'));

  async function startBuilt(port: number): Promise<{ base: string; stop: () => Promise<number | null> }> {
    const child = deployment.start(
      {
        PORT: String(port),
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        WEB_CONCURRENCY: '2',
        MODERATION_ENABLED: 'true',
        ALLOW_PRIVATE_WEBHOOKS: 'true',
        WEBHOOK_RETRY_BASE_MS: '50',
        NODE_OPTIONS: `--require ${join(modulesDir, 'preload.js')}`,
      },
      main(),
    );
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      'the built service ready, model loaded',
      async () => {
        if (child.exitCode !== null) {
          throw new Error(`exited: ${output}`);
        }
        return (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200;
      },
      120_000,
    );
    // Both workers: the second is forked once the first listens.
    await waitFor('both workers', () => output.includes('2 processes'), 60_000);
    return {
      base,
      stop: async () => {
        child.kill('SIGTERM');
        return exited;
      },
    };
  }

  it('should serve uploads, links, variants, webhooks, /docs and the website, each worker from the bundle with one copy of Nest', async () => {
    const { base, stop } = await startBuilt(await freePort());

    const site = await fetch(`${base}/`);
    expect(site.status).toBe(200);
    expect(await site.text()).toContain('<div id="root">');
    const docs = await fetch(`${base}/docs`);
    expect(docs.status).toBe(200);
    const asset = /src="\.?\/?(docs\/)?([^"]+\.js)"/.exec(await docs.text());
    expect(asset).not.toBeNull();
    expect((await fetch(`${base}/docs/${asset![2]}`)).status).toBe(200);

    const register = await fetch(`${base}/api/v1/auth/register`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: 'bundle@example.test', password: 'correct horse battery' }),
    });
    expect(register.status).toBe(201);
    const cookie = register.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const session = (await (
      await fetch(`${base}/api/v1/auth/session`, { headers: { Cookie: cookie } })
    ).json()) as {
      csrf_token: string;
    };
    const asUser = { Cookie: cookie, 'X-CSRF-Token': session.csrf_token, 'Content-Type': 'application/json' };
    const key = (await (
      await fetch(`${base}/api/v1/keys`, {
        method: 'POST',
        headers: asUser,
        body: JSON.stringify({ label: 'b' }),
      })
    ).json()) as { token: string };
    const hook = await fetch(`${base}/api/v1/webhooks`, {
      method: 'POST',
      headers: asUser,
      body: JSON.stringify({ url: receiver.url('/bundle') }),
    });
    expect(hook.status).toBe(201);

    const upload = async (
      bytes: Buffer,
      name: string,
    ): Promise<{ status: number; body: Record<string, any> }> => {
      const form = new FormData();
      form.append('file', new Blob([bytes]), name);
      const res = await fetch(`${base}/api/v1/upload`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key.token}` },
        body: form,
      });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    // A small still (the event loop), a 4.3 MP one (the image thread), a 17 MP animation (the heavy-image process).
    const small = await upload(await png(41, 64, 48), 'small.png');
    expect(small.status).toBe(200);
    const large = await upload(await jpeg(42, 2400, 1800), 'large.jpg');
    expect(large.status).toBe(200);
    expect(large.body.width).toBe(2400);
    const frames = 17;
    const strip = Buffer.alloc(1000 * 1000 * frames * 3);
    for (let f = 0; f < frames; f++) {
      strip.fill(f * 12, f * 3_000_000, (f + 1) * 3_000_000);
    }
    const gif = await sharp(strip, {
      raw: { width: 1000, height: 1000 * frames, channels: 3, pageHeight: 1000 },
    })
      .gif({ effort: 1 })
      .toBuffer();
    const heavy = await upload(gif, 'heavy.gif');
    expect(heavy.status).toBe(200);
    expect(heavy.body.mime).toBe('image/gif');

    const link = await fetch(small.body.url as string);
    expect(link.status).toBe(200);
    expect(link.headers.get('content-type')).toBe('image/png');
    const etag = link.headers.get('etag')!;
    expect((await fetch(small.body.url as string, { headers: { 'If-None-Match': etag } })).status).toBe(304);
    const variant = await fetch(`${small.body.url as string}?w=64&format=webp`);
    expect(variant.status).toBe(200);
    expect(variant.headers.get('content-type')).toBe('image/webp');

    await waitFor(
      'three upload.created deliveries',
      () => receiver.requests.filter((r) => r.path === '/bundle').length >= 3,
      30_000,
    );
    // The code cache is made a few seconds after a process listens, when there was none.
    await waitFor('the code cache', () => cacheFiles().length === 1, CACHE_DELAY_MS + 20_000);
    expect(await stop()).toBe(0);

    const lists = readdirSync(modulesDir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(readFileSync(join(modulesDir, f), 'utf8')) as string[]);
    const dist = join(app, 'dist', 'src');
    const own = (files: string[]): string[] =>
      files
        .filter((f) => f.startsWith(dist))
        .map((f) => f.slice(dist.length + 1))
        .sort();
    // The primary loads its part of the app as files (src/main.ts); its two workers run the bundle.
    expect(lists.length).toBe(3);
    const primaries = lists.filter((files) => own(files).includes('start.js'));
    expect(primaries.length).toBe(1);
    expect(own(primaries[0])).not.toContain('app.module.js');
    const workers = lists.filter((files) => !primaries.includes(files));
    for (const files of workers) {
      // Nothing that must have one copy was loaded from node_modules beside the bundle's own.
      expect(
        files.filter((f) => /node_modules\/(@nestjs|rxjs|class-validator|class-transformer)\//.test(f)),
      ).toEqual([]);
      // Of the app's own files, only the entry and its loader (with the run-time V8 flags it sets before the compile:
      // garbage-release's and frame-memory's): the rest ran from the bundle.
      expect(own(files)).toEqual([
        'app-paths.js',
        'config/early-settings.js',
        'early-worker.js',
        'main.js',
        'modules/media/frame-memory.js',
        'modules/uploads/garbage-release.js',
        'start-loader.js',
      ]);
      // What stays outside the bundle on purpose loads from node_modules (scripts/bundle.ts's EXTERNAL).
      expect(files.some((f) => f.includes('node_modules/@mikro-orm/core/'))).toBe(true);
    }
  }, 240_000);

  it('should use the code cache at the next start and leave it as it is', async () => {
    const [name] = cacheFiles();
    expect(name).toMatch(/^start\.bundle\.[0-9a-f]{32}\.v8cache$/);
    const file = join(app, 'dist', 'src', name);
    const before = {
      mtime: statSync(file).mtimeMs,
      hash: createHash('sha256').update(readFileSync(file)).digest('hex'),
    };
    const { stop } = await startBuilt(await freePort());
    // A process whose cache V8 rejected writes a new one after CACHE_DELAY_MS: give it that time and more.
    await new Promise((r) => setTimeout(r, CACHE_DELAY_MS + 3000));
    expect(await stop()).toBe(0);
    expect(cacheFiles()).toEqual([name]);
    expect(statSync(file).mtimeMs).toBe(before.mtime);
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(before.hash);
  }, 180_000);

  it('should run the modules, not a bundle older than the compiled start.js (tsc ran again alone), nor under --enable-source-maps', async () => {
    const src = join(app, 'dist', 'src');
    const via = async (flags: string[] = []): Promise<string> =>
      (
        await run(process.execPath, [
          ...flags,
          '-e',
          `require(${JSON.stringify(join(src, 'start-loader.js'))}).loadStart().then((l) => { process.stdout.write(l.via); process.exit(0); })`,
        ])
      ).stdout;
    expect(await via()).toBe('bundle+cache');
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(src, 'start.js'), later, later);
    expect(await via()).toBe('module');
    utimesSync(join(src, BUNDLE_FILE), later, later);
    expect(await via()).toBe('bundle+cache');
    // Node maps stack frames to the TypeScript lines only for modules it loads itself.
    expect(await via(['--enable-source-maps'])).toBe('module');
  });

  it('should write the bundle in ASCII, wrapped, its expressions beyond ASCII matching as before', async () => {
    const src = join(app, 'letters', 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(
      join(src, 'start.js'),
      'exports.word = (s) => /^[A-ZÇĞİ]+$/.test(s);\nexports.face = (s) => /^[😀-😎]+$/u.test(s);\n',
    );
    await run(process.execPath, [join(app, 'dist', 'scripts', 'bundle.js'), src]);
    const text = readFileSync(join(src, BUNDLE_FILE), 'utf8');
    expect(/[\u0080-\uffff]/.test(text)).toBe(false);
    expect(text.startsWith(BUNDLE_HEAD)).toBe(true);
    const { stdout } = await run(process.execPath, [
      '-e',
      `const { runBundle } = require(${JSON.stringify(join(app, 'dist', 'src', 'start-loader.js'))});
       const file = ${JSON.stringify(join(src, BUNDLE_FILE))};
       const { start } = runBundle(file, require('node:fs').readFileSync(file, 'utf8'));
       process.stdout.write(JSON.stringify([start.word('ÇĞİA'), start.word('ÇX1'), start.face('😀😎'), start.face('😏')]));`,
    ]);
    expect(JSON.parse(stdout)).toEqual([true, false, true, false]);
  });

  it('should fail the build on a pattern that breaks in a bundle, naming it', async () => {
    const src = join(app, 'broken', 'src');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'start.js'), "exports.entry = require.resolve('./beside-me');\n");
    const failed = await run(process.execPath, [join(app, 'dist', 'scripts', 'bundle.js'), src]).then(
      () => null,
      (err: { code: number; stderr: string }) => err,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain('Cannot bundle the service: esbuild warned');
    expect(failed?.stderr).toContain('./beside-me');
    expect(existsSync(join(src, BUNDLE_FILE))).toBe(false);
  });
});
