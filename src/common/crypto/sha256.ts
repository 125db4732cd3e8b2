import { createHash } from 'node:crypto';

/** Lower-case hex SHA-256 of a string or bytes: the one helper for token hashes, dedupe keys and ETags. */
export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
