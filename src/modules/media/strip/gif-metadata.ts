import { assertWithinLimits, DEFAULT_IMAGE_OPTIONS, type StripOptions } from '../image-limits';
import { isAcceptableIccProfile } from './icc-profile';
import { malformed } from './malformed';

// sharp can only drop GIF metadata by re-quantizing every frame, so the blocks are filtered here.
const IMAGE = 0x2c;
const EXTENSION = 0x21;
const TRAILER = 0x3b;
const GRAPHIC_CONTROL = 0xf9;
const PLAIN_TEXT = 0x01;
const APPLICATION = 0xff;

/** Application extensions that change how the GIF plays or looks: looping and an ICC profile. */
const KEPT_APPLICATIONS = new Set(['NETSCAPE2.0', 'ANIMEXTS1.0', 'ICCRGBG1012']);

/**
 * The GIF without comment extensions, XMP and other application extensions; the screen descriptor, colour
 * tables, frames and their timing are copied byte for byte, and anything after the trailer is dropped.
 * Also enforces the pixel limits on the logical screen, which browsers allocate per frame but libvips ignores
 * when it is over 2048 px (it then reports the frames' extent), and the frame cap. The first ICC extension stays only
 * if it holds an acceptable profile within `maxIccBytes` (see isAcceptableIccProfile).
 */
export function stripGifMetadata(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer {
  return Buffer.concat(stripGifParts(input, options));
}

/** stripGifMetadata's pieces, in order: slices of `input` wherever its bytes are kept as they are (joinParts). */
export function stripGifParts(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer[] {
  const version = input.toString('latin1', 0, 6);
  if (input.length < 13 || (version !== 'GIF87a' && version !== 'GIF89a')) {
    throw malformed('GIF', 'bad header');
  }
  let frames = 0;
  let iccSeen = false;
  let pos = 13 + colourTableLength(input[10]);
  const parts: Buffer[] = [input.subarray(0, pos)];
  // A GIF that ends between blocks without its trailer still plays in every decoder: the trailer is added.
  while (pos < input.length && input[pos] !== TRAILER) {
    const start = pos;
    let kept = true;
    if (input[pos] === IMAGE) {
      if (pos + 10 > input.length) {
        throw malformed('GIF', 'truncated image descriptor');
      }
      frames++;
      // descriptor (10) + local colour table + LZW minimum code size (1), then the data sub-blocks
      pos = skipSubBlocks(input, pos + 10 + colourTableLength(input[pos + 9]) + 1);
    } else if (input[pos] === EXTENSION) {
      const label = input[pos + 1];
      kept =
        label === GRAPHIC_CONTROL ||
        label === PLAIN_TEXT ||
        (label === APPLICATION && isKeptApplication(input, pos));
      pos = skipSubBlocks(input, pos + 2);
      if (
        kept &&
        label === APPLICATION &&
        input.toString('latin1', start + 3, start + 14) === 'ICCRGBG1012'
      ) {
        kept = !iccSeen && isAcceptableIccProfile(joinSubBlocks(input, start + 14, pos), options.maxIccBytes);
        iccSeen = true;
      }
    } else {
      throw malformed('GIF', 'unknown block');
    }
    if (kept) {
      parts.push(input.subarray(start, pos));
    }
  }
  assertWithinLimits(input.readUInt16LE(6), input.readUInt16LE(8), Math.max(frames, 1), options.maxFrames);
  parts.push(pos < input.length ? input.subarray(pos, pos + 1) : Buffer.from([TRAILER]));
  return parts;
}

function colourTableLength(packed: number): number {
  return packed & 0x80 ? 3 << ((packed & 0x07) + 1) : 0;
}

function isKeptApplication(input: Buffer, pos: number): boolean {
  return input[pos + 2] === 11 && KEPT_APPLICATIONS.has(input.toString('latin1', pos + 3, pos + 14));
}

/** The data of the sub-blocks from `pos` to `end` (which skipSubBlocks has already checked). */
function joinSubBlocks(input: Buffer, pos: number, end: number): Buffer {
  const parts: Buffer[] = [];
  for (let i = pos; i < end && input[i] !== 0; i += 1 + input[i]) {
    parts.push(input.subarray(i + 1, i + 1 + input[i]));
  }
  return Buffer.concat(parts);
}

/** Offset just past the zero-length block that ends the sub-blocks starting at `pos`. */
function skipSubBlocks(input: Buffer, pos: number): number {
  let i = pos;
  while (i < input.length) {
    const size = input[i];
    i += 1 + size;
    if (size === 0) {
      return i;
    }
  }
  throw malformed('GIF', 'truncated data sub-blocks');
}
