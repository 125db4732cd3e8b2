/**
 * Uploads end to end against the sum of their unavoidable parts (issue 14, goal 2).
 *
 * For each image, one upload at a time through the real HTTP service (moderation on, the real model), and in the
 * same run, measured alone on the same bytes in a process of their own (parts.ts, with the start script's allocator
 * settings), after the case's uploads:
 * - the decode of the frames that matter (sharp: a still decoded once, oriented, 8-bit sRGB; an animation's frames
 *   all decoded once),
 * - the review (the real model: preprocessing and inference of the frames the service reviews),
 * - the hashes (SHA-256 of the upload and of the stored bytes),
 * - the write (to a temp file, fsync, rename: what the local storage driver does).
 * The row's ratio is the end-to-end median over the median of that sum; the goal is ≤ 1.5×.
 * Each case's bytes are all made before its first timed upload and this process's garbage is then collected: the
 * encodes and copies behind them, collected by V8's helper threads during an upload, stalled the service (parts.ts).
 * The parts process has the service's allocator settings: on a machine where a 4 KB page fault is costly, the parts
 * alone would otherwise pay a fault lottery the service does not (a 12 MP decode took 55 ms in one sample and 178 ms
 * in the next).
 * The 16×16 PNG row is the fixed cost: its end-to-end median in ms against the 20 ms goal (a ratio to 20 ms). Its
 * pixels have transparency, so the review classifies it over two backgrounds; an informational row beside it gives
 * an opaque 16×16 PNG (one review input). Each 16×16 case is also sent from a lean client (uploadKeptAlive: one
 * prebuilt body, one write, a kept-alive connection), in an informational row: the service's part without fetch's.
 * The 1080p JPEG is sent as many times again right after its timed uploads, each as the one before is answered, in an
 * informational row beside its own: the timed uploads come after the pause in which the parts were measured, and on
 * the machines of these tables the first uploads after a pause were slower at every step (docs/performance.md).
 * Every case also reports the client's own part, in an informational row: the same bytes sent the same way to a bare
 * node:http server in a process of its own that only reads them (sink.ts), from fetch and FormData against the lean
 * client. The end-to-end row holds what fetch spends on its side (building the multipart stream, reading the Blob in
 * pieces, each a turn of its event loop on the cores the service uses too): the row less this is about the service's
 * part.
 * Every case also reports the service's CPU per upload (every thread of its processes, from /proc) against its parts'
 * CPU alone, in an informational row: the wall time of an upload also holds its round trips (the key, the limits,
 * the dedupe lookup, the record) and the client's own work on the same cores, which this row leaves out.
 *
 *   npm run bench -- [runs] uploads
 *
 * BENCH_UPLOAD_CASES=<regex> runs only the cases whose label matches (`BENCH_UPLOAD_CASES=RGBA`): a case alone, or
 * after another (`'12 MP|RGBA'`), since what ran before moves the numbers (docs/performance.md).
 * BENCH_SESSION_THREADS=<1–4> and BENCH_SOLO_THREADS=<0–4> run the service and the review alone with that
 * MODERATION_SESSION_THREADS and MODERATION_SOLO_THREADS instead of the defaults, named in each row's note: the way to
 * choose them for a machine (the review alone, as bench/moderation/threads.ts times it, did not show the gain a lone
 * input had from a second thread in the service).
 * BENCH_UPLOAD_STAGES=1 runs the service with metrics on and adds to each case's end-to-end row the mean of every step
 * of its uploads as the service times them (stages.ts): off by default, so the service measured is the tables' own.
 */
import { fork } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import { MODERATION_THREAD_DEFAULTS } from '../../src/config/app-config';
import { ensureNsfwModel } from '../../src/modules/moderation/model/nsfw-model-cache';
import { newKey, REPO_DIR, startApp, treeCpuMs, upload, uploadKeptAlive } from '../lib/app';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import { startScriptEnv } from '../lib/service-process';
import { RELEASE_IDLE_MS } from '../../src/modules/uploads/garbage-release';
import type { PartsReply, PartsRequest, PartTimes } from './parts';
import type { SinkListening } from './sink';
import { freePort } from '../../test/setup/private-servers';
import {
  addStageDelta,
  describeStages,
  scrapeStages,
  type StageTotals,
  STAGES_METRICS_TOKEN,
  STAGES_ON,
} from './stages';

const MODEL_CACHE = join(REPO_DIR, '.tmp', 'moderation-cache');
/** MODERATION_THREADS' default; the service and the review measured alone use the same. */
const REVIEW_THREADS = MODERATION_THREAD_DEFAULTS.threads;
/**
 * MODERATION_SESSION_THREADS for the service and the review measured alone: the default, or BENCH_SESSION_THREADS
 * (1–4), to see how the setting moves the uploads on this machine (README, NSFW moderation).
 */
const SESSION_THREADS = threadsSetting('BENCH_SESSION_THREADS', 1, MODERATION_THREAD_DEFAULTS.sessionThreads);
/** MODERATION_SOLO_THREADS likewise: its default, or BENCH_SOLO_THREADS (0–4; 0, no single-input session). */
const SOLO_THREADS = threadsSetting('BENCH_SOLO_THREADS', 0, MODERATION_THREAD_DEFAULTS.soloThreads);

function threadsSetting(name: string, least: number, byDefault: number): number {
  const value = process.env[name];
  if (value === undefined) {
    return byDefault;
  }
  if (!/^[0-4]$/.test(value) || Number(value) < least) {
    throw new Error(`${name} must be a whole number from ${least} to 4, not ${value}`);
  }
  return Number(value);
}
/** The settings measured when not the defaults, for each row's note. */
const SETTINGS =
  (SESSION_THREADS !== MODERATION_THREAD_DEFAULTS.sessionThreads
    ? `; MODERATION_SESSION_THREADS=${SESSION_THREADS}`
    : '') +
  (SOLO_THREADS !== MODERATION_THREAD_DEFAULTS.soloThreads
    ? `; MODERATION_SOLO_THREADS=${SOLO_THREADS}`
    : '');
const ONLY = process.env.BENCH_UPLOAD_CASES ? new RegExp(process.env.BENCH_UPLOAD_CASES) : undefined;

interface Case {
  label: string;
  /** Fresh bytes for sample `i` (distinct, so no upload is a dedupe hit). */
  make: (i: number) => Promise<Buffer>;
  name: string;
  animated: boolean;
  samples: number;
  /** A row shown beside the goal rows, with no goal of its own. */
  informational?: boolean;
  /**
   * Also time `samples` more uploads right after the timed ones, with no pause before them (an informational row):
   * what the upload costs once the service and the client are busy, against the first uploads after a pause.
   */
  steady?: boolean;
}

/** Photo-like pixels: gradients, a bright ellipse, grain; `seed` changes the grain. */
export function photoPixels(width: number, height: number, channels: 3 | 4, seed: number): Buffer {
  const data = Buffer.alloc(width * height * channels);
  let s = 7 + seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      const grain = (s >>> 28) - 8;
      const k = Math.max(0, 1 - Math.hypot((x - width / 2) / (width / 4), (y - height / 2) / (height / 3)));
      const i = (y * width + x) * channels;
      data[i] = Math.min(255, Math.max(0, 40 + (150 * x) / width + 60 * k + grain));
      data[i + 1] = Math.min(255, Math.max(0, 60 + (100 * y) / height + 50 * k + grain));
      data[i + 2] = Math.min(255, Math.max(0, 120 - 40 * k + grain));
      if (channels === 4) {
        data[i + 3] = x < width / 4 ? 0 : 255;
      }
    }
  }
  return data;
}

/**
 * The same pixels with the bits of `i` drawn as black and white 4×4 blocks along the top row (a change lossy
 * encoding keeps): distinct bytes at the cost of one encode.
 */
export function variant(pixels: Buffer, i: number, width: number, channels: number): Buffer {
  const copy = Buffer.from(pixels);
  const side = Math.min(4, Math.floor(width / 20));
  for (let bit = 0; bit < 20; bit++) {
    const v = (i >> bit) & 1 ? 255 : 0;
    for (let y = 0; y < Math.max(1, side); y++) {
      for (let x = 0; x < Math.max(1, side); x++) {
        const o = (y * width + bit * Math.max(1, side) + x) * channels;
        copy.fill(v, o, o + Math.min(3, channels));
      }
    }
  }
  return copy;
}

function cases(): Case[] {
  const hd = photoPixels(1920, 1080, 3, 1);
  const twelve = photoPixels(4000, 3000, 3, 2);
  const rgba = photoPixels(1920, 1080, 4, 3);
  const [gw, gh, frames] = [480, 270, 24];
  const gifFrames = Buffer.concat(Array.from({ length: frames }, (_, f) => photoPixels(gw, gh, 3, 10 + f)));
  const tiny = photoPixels(16, 16, 4, 4);
  const tinyOpaque = photoPixels(16, 16, 3, 5);
  return [
    {
      label: '1920×1080 JPEG',
      name: 'hd.jpg',
      animated: false,
      samples: 5,
      steady: true,
      make: (i) =>
        sharp(variant(hd, i, 1920, 3), { raw: { width: 1920, height: 1080, channels: 3 } })
          .jpeg({ quality: 85 })
          .toBuffer(),
    },
    {
      label: '12 MP JPEG (4000×3000)',
      name: 'twelve.jpg',
      animated: false,
      // Five, not three: its decode, in the service and in the parts alike, takes 55–70 ms or 155–185 ms from one
      // sample to the next (a 36 MB buffer mapped afresh; docs/performance.md, "The machine").
      samples: 5,
      make: (i) =>
        sharp(variant(twelve, i, 4000, 3), { raw: { width: 4000, height: 3000, channels: 3 } })
          .jpeg({ quality: 85 })
          .toBuffer(),
    },
    {
      label: '1920×1080 RGBA PNG',
      name: 'rgba.png',
      animated: false,
      samples: 5,
      make: (i) =>
        sharp(variant(rgba, i, 1920, 4), { raw: { width: 1920, height: 1080, channels: 4 } })
          .png()
          .toBuffer(),
    },
    {
      label: `animated GIF (${frames} frames of ${gw}×${gh})`,
      name: 'anim.gif',
      animated: true,
      samples: 5,
      make: (i) =>
        sharp(variant(gifFrames, i, gw, 3), {
          raw: { width: gw, height: gh * frames, channels: 3, pageHeight: gh },
        })
          .gif({ effort: 1 })
          .toBuffer(),
    },
    {
      label: '16×16 PNG (fixed cost)',
      name: 'tiny.png',
      animated: false,
      samples: 25,
      make: (i) =>
        sharp(variant(tiny, i, 16, 4), { raw: { width: 16, height: 16, channels: 4 } })
          .png()
          .toBuffer(),
    },
    {
      // The same without transparency: one review input, where the row above has two (over white and over black).
      label: '16×16 PNG, opaque (informational)',
      name: 'tiny-opaque.png',
      animated: false,
      informational: true,
      samples: 25,
      make: (i) =>
        sharp(variant(tinyOpaque, i, 16, 3), { raw: { width: 16, height: 16, channels: 3 } })
          .png()
          .toBuffer(),
    },
  ];
}

/** The parts process (parts.ts), forked with the start script's allocator settings and able to collect on demand. */
function partsProcess(): { ask: (request: PartsRequest) => Promise<PartsReply>; stop: () => void } {
  const child = fork(join(__dirname, 'parts.ts'), [], {
    execArgv: ['-r', 'ts-node/register/transpile-only', '--expose-gc'],
    env: { ...process.env, ...startScriptEnv() },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const ask = (request: PartsRequest): Promise<PartsReply> =>
    new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`the parts process exited (${code})`));
      child.once('exit', onExit);
      child.once('message', (reply: PartsReply) => {
        child.off('exit', onExit);
        if (reply.kind === 'failed') {
          reject(new Error(`the parts process failed: ${reply.error}`));
        } else {
          resolve(reply);
        }
      });
      child.send(request);
    });
  return { ask, stop: () => child.connected && child.disconnect() };
}

/** The client floor's server (sink.ts) in a process of its own: its base URL, and how to end it. */
async function sinkProcess(): Promise<{ base: string; stop: () => void }> {
  const child = fork(join(__dirname, 'sink.ts'), [], {
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the sink process exited (${code})`)));
    child.once('message', (m: SinkListening) => resolve(m.port));
  });
  return { base: `http://127.0.0.1:${port}`, stop: () => child.connected && child.disconnect() };
}

/** `bytes` in a file of the parts process's to measure (then remove). */
async function partsFile(
  dir: string,
  name: string,
  bytes: Buffer,
  animated: boolean,
): Promise<{ path: string; animated: boolean }> {
  const path = join(dir, `bench-parts-${name}`);
  await writeFile(path, bytes);
  return { path, animated };
}

async function measureParts(
  parts: ReturnType<typeof partsProcess>,
  files: { path: string; animated: boolean }[],
): Promise<PartTimes[]> {
  const reply = await parts.ask({ kind: 'measure', files });
  if (reply.kind !== 'measured') {
    throw new Error(`the parts process answered ${reply.kind}`);
  }
  return reply.times;
}

/** One request to the sink (sink.ts): its time in ms; anything but a 200 that read every byte ends the suite. */
async function sunk(
  bytes: number,
  send: () => Promise<{ status: number; body: Record<string, unknown> }>,
): Promise<number> {
  const started = performance.now();
  const res = await send();
  const ms = performance.now() - started;
  if (res.status !== 200 || typeof res.body.received !== 'number' || res.body.received <= bytes) {
    throw new Error(`the sink answered ${res.status} ${JSON.stringify(res.body)}`);
  }
  return ms;
}

/** A full collection of this process's garbage (run-all forks suites with `--expose-gc`), before timed uploads. */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

export const suite: BenchSuite = {
  name: 'uploads',
  async run({ runs }) {
    const modelPath = await ensureNsfwModel(MODEL_CACHE);
    const parts = partsProcess();
    await parts.ask({
      kind: 'load',
      modelPath,
      threads: REVIEW_THREADS,
      sessionThreads: SESSION_THREADS,
      soloThreads: SOLO_THREADS,
    });
    const sink = await sinkProcess().catch((error: unknown) => {
      parts.stop();
      throw error;
    });
    const app = await startApp({
      port: await freePort(),
      env: {
        MODERATION_MODEL_PATH: modelPath,
        MODERATION_THREADS: String(REVIEW_THREADS),
        MODERATION_SESSION_THREADS: String(SESSION_THREADS),
        MODERATION_SOLO_THREADS: String(SOLO_THREADS),
        ...(STAGES_ON ? { METRICS_TOKEN: STAGES_METRICS_TOKEN } : {}),
      },
    }).catch((error: unknown) => {
      parts.stop();
      sink.stop();
      throw error;
    });
    const all = cases().filter((c) => !ONLY || ONLY.test(c.label));
    const e2e = all.map(() => [] as number[]);
    // The 16×16 cases also through a lean client (uploadKeptAlive): the service's part of the fixed cost.
    const lean = all.map(() => [] as number[]);
    // The client floor: each case's bytes from fetch and from the lean client to a bare server (sink.ts).
    const sinkFetch = all.map(() => [] as number[]);
    const sinkLean = all.map(() => [] as number[]);
    // The steady cases' uploads right after the timed ones (Case.steady).
    const steady = all.map(() => [] as number[]);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const sums = all.map(() => [] as number[]);
    // CPU per upload, per run: the service's (every thread of its processes) and its parts' alone (parts.ts).
    const serviceCpu = all.map(() => [] as number[]);
    const partsCpu = all.map(() => [] as number[]);
    // BENCH_UPLOAD_STAGES=1: each case's steps as the service reports them (stages.ts), over all its runs.
    const stages = all.map((): StageTotals => new Map());
    const split = all.map(() => ({
      decode: [] as number[],
      review: [] as number[],
      hash: [] as number[],
      write: [] as number[],
    }));
    let n = 0;
    try {
      const token = await newKey(app.base);
      // Warm-up: every path once (JIT, model, connections), in the service and in the parts process.
      const warmUp: { path: string; animated: boolean }[] = [];
      for (const [ci, c] of all.entries()) {
        const bytes = await c.make(1_000_000);
        const res = await upload(app.base, token, bytes, c.name);
        if (res.status !== 200) {
          throw new Error(`warm-up upload of ${c.label} answered ${res.status} ${JSON.stringify(res.body)}`);
        }
        warmUp.push(await partsFile(app.dataDir, `warm-up-${ci}`, bytes, c.animated));
      }
      await measureParts(parts, warmUp);
      for (let r = 0; r < runs; r++) {
        for (const [ci, c] of all.entries()) {
          // Read before the bytes are made, so that the scrape is not the request just before the timed uploads.
          const stagesBefore = STAGES_ON ? await scrapeStages(app.base) : undefined;
          // Every sample's bytes made first, and this process's garbage collected, so that nothing of the client's
          // own runs on the two cores while an upload is timed (parts.ts says what it did to the service).
          const tiny = c.label.startsWith('16×16');
          const samples: { bytes: Buffer; leanBytes?: Buffer }[] = [];
          for (let s = 0; s < c.samples; s++) {
            samples.push({ bytes: await c.make(++n), leanBytes: tiny ? await c.make(++n) : undefined });
          }
          const after: Buffer[] = [];
          for (let s = 0; c.steady && s < c.samples; s++) {
            after.push(await c.make(++n));
          }
          collect();
          /** One upload's time (ms); anything but a new upload's 200 ends the suite. */
          const timed = async (send: () => ReturnType<typeof upload>): Promise<number> => {
            const started = performance.now();
            const res = await send();
            const ms = performance.now() - started;
            if (res.status !== 200 || res.body.deduplicated) {
              throw new Error(`upload of ${c.label} answered ${res.status} ${JSON.stringify(res.body)}`);
            }
            return ms;
          };
          const ours: number[] = [];
          const leanOurs: number[] = [];
          const cpuBefore = treeCpuMs(app.child.pid!);
          for (const { bytes, leanBytes } of samples) {
            ours.push(await timed(() => upload(app.base, token, bytes, c.name)));
            if (leanBytes) {
              leanOurs.push(await timed(() => uploadKeptAlive(agent, app.base, token, leanBytes, c.name)));
            }
          }
          const steadyOurs: number[] = [];
          for (const bytes of after) {
            steadyOurs.push(await timed(() => upload(app.base, token, bytes, c.name)));
          }
          const uploads = ours.length + leanOurs.length + steadyOurs.length;
          serviceCpu[ci].push((treeCpuMs(app.child.pid!) - cpuBefore) / uploads);
          if (stagesBefore) {
            // After the CPU is read: the scrape's own work is not the uploads'.
            addStageDelta(stages[ci], stagesBefore, await scrapeStages(app.base));
          }
          if (steadyOurs.length > 0) {
            steady[ci].push(median(steadyOurs));
          }
          e2e[ci].push(median(ours));
          if (leanOurs.length > 0) {
            lean[ci].push(median(leanOurs));
          }
          // The parts alone, on the same bytes, after the case's uploads, once the service has had the time to
          // finish what follows a burst (GarbageRelease's collection after RELEASE_IDLE_MS): in the service's data
          // dir (its disk).
          const files = await Promise.all(
            samples.map(({ bytes }, s) => partsFile(app.dataDir, `${r}-${ci}-${s}`, bytes, c.animated)),
          );
          await new Promise((resolve) => setTimeout(resolve, RELEASE_IDLE_MS + 200));
          const times = await measureParts(parts, files);
          for (const t of times) {
            split[ci].decode.push(t.decode);
            split[ci].review.push(t.review);
            split[ci].hash.push(t.hash);
            split[ci].write.push(t.write);
          }
          sums[ci].push(median(times.map((t) => t.decode + t.review + t.hash + t.write)));
          partsCpu[ci].push(median(times.map((t) => t.cpu)));
          // The same bytes to a server that only reads them, right after the parts as the next case's uploads come
          // right after these: what the client and the connection cost, fetch's and the lean client's in turn.
          collect();
          const floorFetch: number[] = [];
          const floorLean: number[] = [];
          for (const { bytes } of samples) {
            floorFetch.push(await sunk(bytes.length, () => upload(sink.base, token, bytes, c.name)));
            floorLean.push(
              await sunk(bytes.length, () => uploadKeptAlive(agent, sink.base, token, bytes, c.name)),
            );
          }
          sinkFetch[ci].push(median(floorFetch));
          sinkLean[ci].push(median(floorLean));
        }
      }
    } finally {
      agent.destroy();
      await app.stop();
      parts.stop();
      sink.stop();
    }
    return all.flatMap((c, ci): BenchRow[] => {
      const ours = median(e2e[ci]);
      const p = split[ci];
      // Empty unless BENCH_UPLOAD_STAGES=1 (nothing scraped).
      const steps = describeStages(stages[ci]);
      const detail =
        `parts: decode ${median(p.decode).toFixed(1)}, review ${median(p.review).toFixed(1)}, ` +
        `hashes ${median(p.hash).toFixed(1)}, write ${median(p.write).toFixed(1)} ms; ` +
        `${runs} runs × ${c.samples} uploads` +
        SETTINGS +
        (steps ? `; ${steps}` : '');
      const cpu = row({
        label: `upload ${c.label}, the service's CPU per upload (ms)`,
        value: median(serviceCpu[ci]),
        baselineLabel: "its parts' CPU alone",
        baseline: median(partsCpu[ci]),
        unit: 'ms',
        note:
          "informational: every thread of the service's processes over the case's uploads " +
          "(/proc/<pid>/task/*/schedstat), per upload, against the parts' process.cpuUsage() over its decode, review, " +
          'hashes and write: what the service spends beyond its image work, whatever the wall time',
      });
      const floor = median(sinkFetch[ci]);
      const servicePart = ours - floor;
      const client = row({
        label: `upload ${c.label}, the client's own part (ms)`,
        value: floor,
        baselineLabel: 'the lean client, same bytes and server',
        baseline: median(sinkLean[ci]),
        unit: 'ms',
        note:
          'informational: the same bytes from fetch and FormData, as the end-to-end row sends them, to a bare ' +
          'node:http server in a process of its own that reads the body and answers at once (bench/uploads/sink.ts), ' +
          'right after the parts; against the lean client (one buffer, one write, a kept-alive connection) to it. ' +
          `The end-to-end row less this: ${servicePart.toFixed(1)} ms` +
          (c.label.startsWith('16×16') ? '' : `, ${(servicePart / median(sums[ci])).toFixed(2)}× the parts`),
      });
      if (c.label.startsWith('16×16')) {
        return [
          row({
            label: `upload ${c.label}, end to end (ms)`,
            value: ours,
            baselineLabel: 'the 20 ms goal (ratio = ms / 20)',
            baseline: 20,
            unit: 'ms',
            goal: c.informational ? undefined : { direction: 'at-most', ratio: 1 },
            note: `sum of its parts ${median(sums[ci]).toFixed(1)} ms; ${detail}`,
          }),
          row({
            label: `upload ${c.label}, the service's part (ms)`,
            value: median(lean[ci]),
            baselineLabel: 'the 20 ms goal (ratio = ms / 20)',
            baseline: 20,
            unit: 'ms',
            note:
              'informational: the same upload from a lean client (the multipart body in one buffer, one write, a ' +
              'kept-alive node:http connection) instead of fetch and FormData',
          }),
          client,
          cpu,
        ];
      }
      const rows = [
        row({
          label: `upload ${c.label}, end to end (ms)`,
          value: ours,
          baselineLabel: 'decode + review + hashes + fsync write alone',
          baseline: median(sums[ci]),
          unit: 'ms',
          goal: { direction: 'at-most', ratio: 1.5 },
          note: detail,
        }),
      ];
      if (c.steady) {
        rows.push(
          row({
            label: `upload ${c.label}, one after another (ms)`,
            value: median(steady[ci]),
            baselineLabel: 'decode + review + hashes + fsync write alone',
            baseline: median(sums[ci]),
            unit: 'ms',
            note:
              `informational: ${c.samples} more uploads right after the row above's, each sent as the one before ` +
              "is answered; the row above's come after a pause of over a second (the parts measured), and the " +
              'first uploads after a pause are slower at every step on this kind of machine (docs/performance.md)',
          }),
        );
      }
      rows.push(client, cpu);
      return rows;
    });
  },
};
