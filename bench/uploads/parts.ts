/**
 * The unavoidable parts of an upload, measured in a process of their own (rows.ts forks this file): the decode of
 * the frames that matter, the review, the hashes and the fsync write, each timed alone on an upload's bytes.
 *
 * Why a process of its own: the bench's client used to measure the parts between its uploads, in the process that
 * times them. The garbage of those decodes (6–36 MB of pixels per sample) was collected by V8's helper threads on
 * the machine's two cores while the next upload ran, and the service stalled 10–17 ms before its handler in 12–18 of
 * 33 1080p uploads (docs/performance.md, eleventh session). Here that garbage is collected before the answer goes
 * back (a full collection, `--expose-gc`), so nothing of the parts runs during a timed upload.
 *
 * It runs with the start script's allocator settings (rows.ts passes them), as the service does: the parts pay the
 * same page faults the service's decode does, no more.
 */
import { createHash } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { decodeAllFrames, decodeFrame, type RawImage } from '../../src/modules/media/decode';
import { NsfwClassifier } from '../../src/modules/moderation/nsfw-classifier';

/** MODERATION_FRAMES' default: the frames of an animation the service reviews. */
const REVIEW_FRAMES = 3;

/** What rows.ts asks for: the classifier to load, then batches of files to measure. */
export type PartsRequest =
  | { kind: 'load'; modelPath: string; threads: number; sessionThreads: number; soloThreads: number }
  | { kind: 'measure'; files: { path: string; animated: boolean }[] };

/** One file's parts, in ms. */
export interface PartTimes {
  decode: number;
  review: number;
  hash: number;
  write: number;
  /**
   * The CPU time of the four parts together, every thread of this process (the decode's and the review's too), and a
   * share of the collection of the batch's garbage.
   */
  cpu: number;
}

export type PartsReply =
  | { kind: 'loaded' }
  | { kind: 'measured'; times: PartTimes[] }
  | { kind: 'failed'; error: string };

/**
 * One decode of the frames that matter, as the review needs them (8-bit sRGB, oriented): a still's one frame, or
 * every frame of an animation once (the proof that the whole animation decodes) with the reviewed ones as views of it.
 * The media module's own decoders: each is the one decode the service makes, nothing around it.
 */
async function decode(bytes: Buffer, animated: boolean): Promise<RawImage[]> {
  return animated ? decodeAllFrames(bytes, REVIEW_FRAMES) : [await decodeFrame(bytes, 0)];
}

/** What the local storage driver does: a temp file, fsync, rename. */
async function fsyncWrite(path: string, bytes: Buffer): Promise<void> {
  const temp = `${path}.tmp`;
  const handle = await open(temp, 'wx', 0o644);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

let classifier: NsfwClassifier | undefined;

async function measure(path: string, animated: boolean): Promise<PartTimes> {
  if (!classifier) {
    throw new Error('measure before load');
  }
  const review = classifier;
  const bytes = await readFile(path);
  let frames: RawImage[] = [];
  const cpuBefore = process.cpuUsage();
  const times = {
    decode: await timed(async () => (frames = await decode(bytes, animated))),
    review: await timed(() => review.classify(frames)),
    hash: await timed(() =>
      Promise.resolve([1, 2].map(() => createHash('sha256').update(bytes).digest('hex'))),
    ),
    write: await timed(() => fsyncWrite(`${path}.written`, bytes)),
  };
  const cpu = process.cpuUsage(cpuBefore);
  return { ...times, cpu: (cpu.user + cpu.system) / 1000 };
}

async function handle(request: PartsRequest): Promise<PartsReply> {
  if (request.kind === 'load') {
    classifier = await NsfwClassifier.load(request.modelPath, {
      threads: request.threads,
      sessionThreads: request.sessionThreads,
      soloThreads: request.soloThreads,
      concurrency: 2,
    });
    // The single-input session loads after load() resolves; the parts are timed with it in use, as the service's are.
    await classifier.soloLoaded;
    return { kind: 'loaded' };
  }
  const times: PartTimes[] = [];
  for (const file of request.files) {
    times.push(await measure(file.path, file.animated));
  }
  await Promise.all(
    request.files.flatMap((f) => [f.path, `${f.path}.written`].map((p) => rm(p, { force: true }))),
  );
  // The garbage of these decodes collected now, not while the client times its next upload. Its CPU is the parts'
  // too (the service collects its decoded frames as well): shared among the files.
  const before = process.cpuUsage();
  (globalThis as { gc?: () => void }).gc?.();
  const collected = process.cpuUsage(before);
  const share = (collected.user + collected.system) / 1000 / Math.max(1, times.length);
  return { kind: 'measured', times: times.map((t) => ({ ...t, cpu: t.cpu + share })) };
}

if (require.main === module) {
  process.on('message', (request: PartsRequest) => {
    handle(request).then(
      (reply) => process.send!(reply),
      (error: unknown) =>
        process.send!({
          kind: 'failed',
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        } satisfies PartsReply),
    );
  });
  process.on('disconnect', () => {
    void Promise.resolve(classifier?.close()).finally(() => process.exit(0));
  });
}
