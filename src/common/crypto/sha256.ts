import { createHash, hash as oneShotHash } from 'node:crypto';

/**
 * Lower-case hex SHA-256 of a string or bytes: the one helper for token hashes, dedupe keys and ETags. Node's one-shot
 * `crypto.hash` (a string is hashed as UTF-8, as `update()` hashes it): no Hash object a call, which every request
 * with a key paid for its token's hash.
 */
export function sha256Hex(data: string | Buffer): string {
  return oneShotHash('sha256', data, 'hex');
}

/** Below this, one slice: hashing it costs less than a turn of the event loop. */
const SLICE_BYTES = 1024 * 1024;

/**
 * sha256Hex of big bytes without stalling the event loop: 1 MB slices (about 0.3 ms each), a turn of the loop between
 * them, so other requests are answered while a 20 MB upload is hashed (about 12 ms of CPU in all), and the write of
 * the same bytes overlaps it. WebCrypto's digest, used before, is no better: it copies the whole input on the calling
 * thread first, which took as long as hashing it there (13 ms for 20 MB, traced as 30–100 ms stalls during a burst
 * of big uploads).
 */
export async function sha256HexAsync(data: Buffer): Promise<string> {
  const hash = createHash('sha256');
  for (let at = 0; at < data.length; at += SLICE_BYTES) {
    if (at > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    hash.update(data.subarray(at, at + SLICE_BYTES));
  }
  return hash.digest('hex');
}
