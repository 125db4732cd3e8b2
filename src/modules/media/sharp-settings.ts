import sharp from 'sharp';

let applied = false;

/**
 * Process-wide sharp settings for a server that decodes untrusted uploads: libvips' operation cache (by default up
 * to 50 MB and 100 operations, keyed by their input buffers) never helps here, since no upload is decoded twice, and
 * only holds memory after a burst. Idempotent.
 */
export function limitSharpMemory(): void {
  if (!applied) {
    sharp.cache(false);
    applied = true;
  }
}
