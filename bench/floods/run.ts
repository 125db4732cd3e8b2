/**
 * Animation floods (issue 9, item 6): latency of ordinary uploads (small JPEG and PNG, one at a time) while the
 * service is idle, and while four worst-case allowed files (a GIF at the 1000-frame cap, 316×316, 100 megapixels in
 * all) are being uploaded again and again by another key. Reports p50/p99 of each phase and the loaded/idle ratio,
 * per run and the median over runs.
 *
 * The service runs as its own process (`node src/main.ts` through ts-node), so the threadpool is sized as in
 * production; it needs the PostgreSQL and Redis of DATABASE_URL / REDIS_URL (defaults: local ones, a throwaway
 * database and Redis prefix per run, removed afterwards). Moderation is off (it needs the model download).
 *
 *   npm run bench:floods -- [runs=3] [samples=40] [appDir=.]
 *
 * appDir lets the same bench drive another checkout (e.g. the code before this change) for a side-by-side baseline.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import Redis from 'ioredis';
import sharp from 'sharp';

const RUNS = Number(process.argv[2] ?? 3);
const SAMPLES = Number(process.argv[3] ?? 40);
const APP_DIR = resolve(process.argv[4] ?? join(__dirname, '..', '..'));
const HEAVY = 4;
const ADMIN_URL = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const CACHE = join(__dirname, '..', '..', '.tmp', 'bench-floods');

/** 1000 frames of 316×316 in which every pixel changes every frame (so no frame can be cropped or skipped). */
async function worstCaseGif(): Promise<Buffer> {
  const file = join(CACHE, 'worst-1000x316.gif');
  if (existsSync(file)) {
    return readFileSync(file);
  }
  const [w, h, frames] = [316, 316, 1000];
  const raw = Buffer.alloc(w * h * frames * 3);
  for (let f = 0; f < frames; f++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const o = ((f * h + y) * w + x) * 3;
        const v = ((x >> 2) + (y >> 2) + f) & 1 ? 255 : 0;
        raw[o] = v;
        raw[o + 1] = 255 - v;
        raw[o + 2] = f & 1 ? v : 0;
      }
    }
  }
  const gif = await sharp(raw, { raw: { width: w, height: h * frames, channels: 3, pageHeight: h } })
    .gif({ effort: 1, colours: 4, dither: 0, interFrameMaxError: 0, interPaletteMaxError: 0 })
    .toBuffer();
  mkdirSync(CACHE, { recursive: true });
  writeFileSync(file, gif);
  return gif;
}

/** A 640×480 photo-like image; `seed` makes the bytes distinct, so no upload is a dedupe hit. */
async function smallImage(seed: number): Promise<{ bytes: Buffer; name: string }> {
  const image = sharp({
    create: {
      width: 640,
      height: 480,
      channels: 3,
      background: { r: seed % 256, g: (seed * 7) % 256, b: 90 },
      noise: { type: 'gaussian', mean: 120, sigma: 30 },
    },
  });
  return seed % 2 === 0
    ? { bytes: await image.jpeg({ quality: 85 }).toBuffer(), name: `s${seed}.jpg` }
    : { bytes: await image.png().toBuffer(), name: `s${seed}.png` };
}

async function upload(base: string, token: string, bytes: Buffer, name: string): Promise<number> {
  const form = new FormData();
  form.append('file', new Blob([bytes]), name);
  const res = await fetch(`${base}/api/v1/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    body: form,
  });
  await res.arrayBuffer();
  return res.status;
}

async function newKey(base: string): Promise<string> {
  const email = `bench-${randomBytes(6).toString('hex')}@example.com`;
  const password = 'bench password 123';
  const json = { 'Content-Type': 'application/json' };
  await fetch(`${base}/api/v1/auth/register`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password }),
  });
  const login = await fetch(`${base}/api/v1/auth/login`, {
    method: 'POST',
    headers: json,
    body: JSON.stringify({ email, password }),
  });
  const cookie = login.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const session = (await (
    await fetch(`${base}/api/v1/auth/session`, { headers: { Cookie: cookie } })
  ).json()) as {
    csrf_token: string;
  };
  const key = await fetch(`${base}/api/v1/keys`, {
    method: 'POST',
    headers: { ...json, Cookie: cookie, 'X-CSRF-Token': session.csrf_token },
    body: JSON.stringify({ label: 'bench' }),
  });
  const body = (await key.json()) as { token?: string };
  if (!body.token) {
    throw new Error(`could not create a key: ${JSON.stringify(body)}`);
  }
  return body.token;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** SAMPLES ordinary uploads one after another; latencies in ms. */
async function ordinaryUploads(base: string, token: string, seed: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const { bytes, name } = await smallImage(seed + i);
    const started = performance.now();
    const status = await upload(base, token, bytes, name);
    times.push(performance.now() - started);
    if (status !== 200) {
      throw new Error(`ordinary upload answered ${status}`);
    }
  }
  return times.sort((a, b) => a - b);
}

async function startApp(port: number): Promise<{ child: ChildProcess; stop: () => Promise<void> }> {
  const db = `fxf_bench_${randomBytes(5).toString('hex')}`;
  const admin = new Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`create database ${db}`);
  await admin.end();
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${db}`;
  const dataDir = mkdtempSync(join(tmpdir(), 'fxf-bench-'));
  const prefix = `fxf-bench:${randomBytes(5).toString('hex')}:`;
  const child = spawn(process.execPath, ['-r', 'ts-node/register/transpile-only', 'src/main.ts'], {
    cwd: APP_DIR,
    env: {
      PATH: process.env.PATH,
      PORT: String(port),
      DATA_DIR: dataDir,
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL,
      REDIS_PREFIX: prefix,
      MODERATION_ENABLED: 'false',
      MIGRATE_ON_START: 'true',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
      RATE_LIMIT_UPLOADS_PER_DAY: '1000000',
      RATE_LIMIT_MANAGEMENT_PER_MINUTE: '100000',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok, fail) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('listening') && ok());
    child.on('exit', (code) => fail(new Error(`the app exited with ${code}`)));
  });
  return {
    child,
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dataDir, { recursive: true, force: true });
      const c = new Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`drop database if exists ${db} with (force)`);
      await c.end();
      const redis = new Redis(REDIS_URL);
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 500);
        if (keys.length > 0) {
          await redis.unlink(...keys);
        }
        cursor = next;
      } while (cursor !== '0');
      redis.disconnect();
    },
  };
}

async function main(): Promise<void> {
  const gif = await worstCaseGif();
  console.log(`app: ${APP_DIR}; worst-case file: GIF, 1000 frames of 316×316, ${gif.length} bytes`);
  const port = 3900 + Math.floor(Math.random() * 100);
  const base = `http://127.0.0.1:${port}`;
  const app = await startApp(port);
  const rows: { idle50: number; idle99: number; load50: number; load99: number; heavyDone: number }[] = [];
  try {
    const light = await newKey(base);
    const heavy = await newKey(base);
    await ordinaryUploads(base, light, 1_000_000); // warm-up
    for (let run = 0; run < RUNS; run++) {
      const idle = await ordinaryUploads(base, light, run * 10_000);
      let stop = false;
      let heavyDone = 0;
      const statuses = new Map<number, number>();
      const floods = Array.from({ length: HEAVY }, async (_, lane) => {
        for (let i = 0; !stop; i++) {
          // A distinct byte after the trailer: each flood upload is new bytes (no dedupe hit), the same decode.
          const bytes = Buffer.concat([gif, Buffer.from([run, lane, i & 0xff])]);
          // A keep-alive socket the server closed just as it was reused fails the request: count it, go on.
          const status = await upload(base, heavy, bytes, 'flood.gif').catch(() => 0);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          heavyDone++;
        }
      });
      await new Promise((r) => setTimeout(r, 1500)); // the four are decoding
      const loaded = await ordinaryUploads(base, light, run * 10_000 + 5000);
      stop = true;
      await Promise.all(floods);
      const row = {
        idle50: percentile(idle, 50),
        idle99: percentile(idle, 99),
        load50: percentile(loaded, 50),
        load99: percentile(loaded, 99),
        heavyDone,
      };
      rows.push(row);
      console.log(
        `run ${run + 1}: idle p50 ${row.idle50.toFixed(0)} ms p99 ${row.idle99.toFixed(0)} ms | ` +
          `under flood p50 ${row.load50.toFixed(0)} ms p99 ${row.load99.toFixed(0)} ms | ` +
          `p99 ratio ${(row.load99 / row.idle99).toFixed(2)} | flood uploads ${heavyDone} ` +
          `(${[...statuses].map(([s, n]) => `${n}×${s}`).join(', ')})`,
      );
    }
  } finally {
    await app.stop();
  }
  const m = (k: keyof (typeof rows)[number]) => median(rows.map((r) => r[k]));
  console.log(
    `median of ${RUNS} runs (${SAMPLES} ordinary uploads each): idle p50 ${m('idle50').toFixed(0)} ms, ` +
      `p99 ${m('idle99').toFixed(0)} ms; under ${HEAVY} worst-case files p50 ${m('load50').toFixed(0)} ms, ` +
      `p99 ${m('load99').toFixed(0)} ms; p50 ratio ${(m('load50') / m('idle50')).toFixed(2)}, ` +
      `p99 ratio ${median(rows.map((r) => r.load99 / r.idle99)).toFixed(2)}`,
  );
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
