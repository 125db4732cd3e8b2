import { createHash } from 'node:crypto';

/** Lower-case hex SHA-256 of a string or bytes: the one helper for token hashes, dedupe keys and ETags. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Below this, hashing on the calling thread costs less than a hop to the threadpool. */
const OFF_THREAD_BYTES = 256 * 1024;

/**
 * sha256Hex of bytes off the event loop: WebCrypto's digest runs on libuv's threadpool, so a 20 MB hash (~40 ms)
 * never stalls other requests, and it can overlap a write of the same bytes.
 */
export async function sha256HexAsync(data: Buffer): Promise<string> {
  if (data.length < OFF_THREAD_BYTES) {
    return sha256Hex(data);
  }
  const digest = await globalThis.crypto.subtle.digest('SHA-256', data);
  return Buffer.from(digest).toString('hex');
}
