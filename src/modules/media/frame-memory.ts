import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ReviewFrame } from './decode';

/** V8's flag for `ArrayBuffer.prototype.transfer` (ES2024), not on by default before V8 11.4 (Node 20 has 11.3). */
const TRANSFER_FLAG = '--harmony-rab-gsab-transfer';

type Transfer = (this: ArrayBuffer, newLength?: number) => ArrayBuffer;

/**
 * `ArrayBuffer.prototype.transfer`: Node's own where it has one, else the one a context made after TRANSFER_FLAG is set
 * has (a harmony flag installs its builtins only in contexts made after it, as `--expose-gc` exposes `gc`). Undefined
 * where neither is there: frames are then freed by V8's collections alone, as before.
 */
function findTransfer(): Transfer | undefined {
  const own = (ArrayBuffer.prototype as { transfer?: Transfer }).transfer;
  if (typeof own === 'function') {
    return own;
  }
  setFlagsFromString(TRANSFER_FLAG);
  const made = runInNewContext('ArrayBuffer.prototype.transfer') as unknown;
  return typeof made === 'function' ? (made as Transfer) : undefined;
}

let transfer: Transfer | undefined | null = null;

/** Sets TRANSFER_FLAG now, if Node needs it (start-loader: the code cache is made under the flags the app runs with). */
export function setTransferFlag(): void {
  transfer ??= findTransfer();
}

/** The memory of frames sharp decoded for this process, by their ArrayBuffer: only these are ever detached. */
const owned = new WeakSet<ArrayBuffer>();

/**
 * Marks `data`, a buffer sharp has just returned, as a decode's own: nothing else shares its memory (it is the whole
 * of its ArrayBuffer, never a slice of Node's pool), so releaseFrames may free it.
 */
export function ownDecoded<T extends Uint8Array>(data: T): T {
  if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) {
    owned.add(data.buffer as ArrayBuffer);
  }
  return data;
}

/**
 * Frees the memory of decoded frames no one reads any more, now rather than at V8's next collection that finds them
 * dead: the frames' views read empty afterwards. Returns the bytes freed.
 *
 * A frame is memory outside V8's heap, which V8 frees only when a collection finds it dead, several uploads' frames at
 * once; until then every decode wrote into memory the process had not used before, at a page fault's cost per 2 MB or
 * 4 KB (the README: How an upload is handled). Freed here once the review is done, the next decode reuses it: 1080p
 * JPEG uploads four at a time with two processes went from a median of 39.0 to 49.0 a second (bench/cluster).
 */
export function releaseFrames(frames: readonly ReviewFrame[]): number {
  transfer ??= findTransfer();
  if (!transfer) {
    return 0;
  }
  let freed = 0;
  for (const frame of frames) {
    if (!('data' in frame)) {
      continue;
    }
    const buffer = frame.data.buffer as ArrayBuffer;
    if (!owned.has(buffer) || buffer.byteLength === 0) {
      continue;
    }
    owned.delete(buffer);
    const bytes = buffer.byteLength;
    try {
      transfer.call(buffer, 0);
    } catch {
      // A buffer V8 will not detach: left to V8's collections, as before.
      continue;
    }
    freed += bytes;
  }
  return freed;
}
