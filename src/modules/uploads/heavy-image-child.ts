/**
 * The heavy-image process (see heavy-image-process.ts): decodes and strips one image at a time for its parent, at a
 * low CPU priority, and answers with the bytes to store and the review frames already turned into the classifier's
 * inputs (a full-resolution frame of a large still would be hundreds of MB over the pipe; its inputs are 600 KB).
 * Started with an IPC channel and `serialization: 'advanced'`; never started on its own.
 */
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';
import { processImage } from '../media/image-processor';
import { limitSharpMemory } from '../media/sharp-settings';
import { frameToModelInputs } from '../moderation/image-preprocess';
import type { HeavyJob, HeavyReply } from './heavy-image-process';
import { toOffloadError } from './offload-jobs';

/**
 * Every thread of this process at `nice` (Linux: niceness is per thread; the threads made later — libuv's pool,
 * libvips' workers — inherit it from the thread that makes them, which is lowered here first).
 */
function lowerPriority(nice: number): void {
  try {
    setPriority(nice);
    for (const tid of readdirSync('/proc/self/task')) {
      setPriority(Number(tid), nice);
    }
  } catch {
    // Not Linux, or not allowed: the process still works, at the parent's priority.
  }
}

const send = (reply: HeavyReply): void => {
  process.send?.(reply);
};

// The parent passes the niceness as the one argument (IMAGE_HEAVY_NICE).
lowerPriority(Number(process.argv[2] ?? 19));
limitSharpMemory();

async function handle(job: HeavyJob): Promise<HeavyReply> {
  try {
    const input = Buffer.from(job.input.buffer, job.input.byteOffset, job.input.byteLength);
    const { data, width, height, pages, review } = await processImage(input, job.type, job.options);
    return {
      id: job.id,
      image: {
        data,
        width,
        height,
        pages,
        review: review.map((frame) => ('inputs' in frame ? frame : { inputs: frameToModelInputs(frame) })),
      },
    };
  } catch (error) {
    return { id: job.id, error: toOffloadError(error) };
  }
}

process.on('message', (job: HeavyJob) => {
  void handle(job).then(send);
});
// The parent went away: nothing is left to do.
process.on('disconnect', () => process.exit(0));
