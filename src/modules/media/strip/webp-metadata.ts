import { DEFAULT_IMAGE_OPTIONS, type StripOptions } from '../image-limits';
import { isAcceptableIccProfile } from './icc-profile';
import { malformed } from './malformed';

// sharp can only drop WebP metadata by re-encoding the pixels, so the RIFF chunks are filtered here.
const HEADER_LENGTH = 12;
const VP8X_EXIF = 0x08;
const VP8X_XMP = 0x04;
const VP8X_ICC = 0x20;

/** Image data, alpha, animation and colour; EXIF, XMP and unknown chunks are dropped. */
const KEPT_CHUNKS = new Set(['VP8X', 'VP8 ', 'VP8L', 'ALPH', 'ANIM', 'ANMF', 'ICCP']);
const BITSTREAMS = new Set(['VP8X', 'VP8 ', 'VP8L']);

/**
 * The WebP without EXIF and XMP chunks, their VP8X flags cleared and the RIFF size recomputed. The ICCP chunk stays
 * only if it is an acceptable profile within `maxIccBytes` (see isAcceptableIccProfile); else its flag is cleared too.
 */
export function stripWebpMetadata(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer {
  if (
    input.length < HEADER_LENGTH ||
    input.toString('latin1', 0, 4) !== 'RIFF' ||
    input.toString('latin1', 8, 12) !== 'WEBP'
  ) {
    throw malformed('WebP', 'bad RIFF header');
  }
  const riffEnd = 8 + input.readUInt32LE(4);
  if (riffEnd > input.length) {
    throw malformed('WebP', 'the RIFF size overruns the file');
  }
  const chunks: Buffer[] = [];
  let vp8x: Buffer | undefined;
  let iccKept = false;
  let pos = HEADER_LENGTH;
  while (pos < riffEnd) {
    if (pos + 8 > riffEnd) {
      throw malformed('WebP', 'truncated chunk header');
    }
    const fourcc = input.toString('latin1', pos, pos + 4);
    const size = input.readUInt32LE(pos + 4);
    const dataEnd = pos + 8 + size;
    if (dataEnd > riffEnd) {
      throw malformed('WebP', `the ${JSON.stringify(fourcc)} chunk overruns the file`);
    }
    if (pos === HEADER_LENGTH && !BITSTREAMS.has(fourcc)) {
      throw malformed('WebP', 'the first chunk is not VP8, VP8L or VP8X');
    }
    let kept = KEPT_CHUNKS.has(fourcc);
    if (fourcc === 'ICCP') {
      kept = !iccKept && isAcceptableIccProfile(input.subarray(pos + 8, dataEnd), options.maxIccBytes);
      iccKept ||= kept;
    }
    if (kept) {
      // Copied with its pad byte, written back as zero when a writer left it off at the very end.
      const chunk = Buffer.alloc(8 + size + (size & 1));
      input.copy(chunk, 0, pos, dataEnd);
      if (fourcc === 'VP8X') {
        if (size < 10) {
          throw malformed('WebP', 'VP8X chunk too short');
        }
        chunk[8] &= ~(VP8X_EXIF | VP8X_XMP);
        vp8x = chunk;
      }
      chunks.push(chunk);
    }
    pos = dataEnd + (size & 1);
  }
  if (vp8x && !iccKept) {
    vp8x[8] &= ~VP8X_ICC;
  }
  const header = Buffer.alloc(HEADER_LENGTH);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(4 + chunks.reduce((sum, chunk) => sum + chunk.length, 0), 4);
  header.write('WEBP', 8, 'latin1');
  return Buffer.concat([header, ...chunks]);
}
