import { randomBytes } from 'node:crypto';

const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

export const FILENAME_PATTERN = /^FIXITFY-[A-Za-z0-9]{12}\.(png|jpg|gif|webp|avif)$/;

/** 12 uniform base62 characters from the CSPRNG (rejection sampling: bytes ≥ 248 are dropped to avoid bias). */
export function randomBase62(length: number): string {
  let out = '';
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < 248 && out.length < length) {
        out += BASE62[byte % 62];
      }
    }
  }
  return out;
}

/** `FIXITFY-` + 12 base62 + the detected type's extension (API.md). */
export function newFilename(ext: string): string {
  return `FIXITFY-${randomBase62(12)}.${ext}`;
}
