/**
 * The image thread (see image-thread.ts): decodes and strips large stills for the event loop's thread, in an isolate
 * of its own, and answers with the bytes to store (none when stripping left the upload whole) and the review frame
 * already turned into the classifier's inputs. Loaded by the thread's bootstrap; never on its own.
 */
import { parentPort } from 'node:worker_threads';
import { processImage } from '../media/image-processor';
import { frameToModelInputs } from '../moderation/image-preprocess';
import { fullCollection } from './garbage-release';
import type { ImageThreadJob, ImageThreadReply } from './image-thread';
import { toOffloadError } from './offload-jobs';

const collect = fullCollection();
let running = 0;

async function handle(job: ImageThreadJob): Promise<{ reply: ImageThreadReply; transfer: ArrayBuffer[] }> {
  try {
    const input = Buffer.from(job.input.buffer, job.input.byteOffset, job.input.byteLength);
    const { data, width, height, pages, review } = await processImage(input, job.type, job.options);
    const frames = review.map((frame) => ('inputs' in frame ? frame : { inputs: frameToModelInputs(frame) }));
    // A copy of its own, so that only its bytes cross (a view would take its whole buffer along).
    const stored = data === input || data.equals(input) ? null : new Uint8Array(data);
    return {
      reply: { id: job.id, image: { data: stored, width, height, pages, review: frames } },
      transfer: [
        ...(stored ? [stored.buffer] : []),
        ...frames.flatMap((f) => f.inputs.map((i) => i.buffer as ArrayBuffer)),
      ],
    };
  } catch (error) {
    return { reply: { id: job.id, error: toOffloadError(error) }, transfer: [] };
  }
}

parentPort?.on('message', (job: ImageThreadJob) => {
  running++;
  void handle(job).then(({ reply, transfer }) => {
    parentPort?.postMessage(reply, transfer);
    // The decoded frame is garbage now: a collection of this small heap frees it (7–10 ms for a 12 MP frame, on this
    // thread), where the event loop's heap would have paid a full collection of its own for it.
    if (--running === 0) {
      collect();
    }
  });
});
