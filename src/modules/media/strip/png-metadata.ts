import { inflateSync } from 'node:zlib';
import { assertWithinLimits, DEFAULT_IMAGE_OPTIONS, type StripOptions } from '../image-limits';
import { isAcceptableIccProfile } from './icc-profile';
import { malformed } from './malformed';

// sharp can only drop PNG metadata by re-encoding (and it cannot write APNG), so the chunks are filtered here.
const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * Ancillary chunks that change how the image displays (colour, transparency, aspect, animation). Every other
 * ancillary chunk goes: tEXt, zTXt, iTXt, eXIf, tIME and private ones (Apple's iDOT holds file offsets that
 * would no longer be true once chunks before it are removed).
 */
const KEPT_ANCILLARY = new Set([
  'iCCP',
  'sRGB',
  'gAMA',
  'cHRM',
  'cICP',
  'mDCV',
  'cLLI',
  'sBIT',
  'pHYs',
  'tRNS',
  'bKGD',
  'acTL',
  'fcTL',
  'fdAT',
]);

const CHUNK_TYPE = /^[A-Za-z]{4}$/;

/**
 * The PNG with only the critical and display chunks, each copied byte for byte; anything after IEND is dropped.
 * Also enforces the pixel limits and the frame cap over all APNG frames, which sharp does not decode. The first
 * iCCP chunk stays only if it holds an acceptable profile within `maxIccBytes` (see isAcceptableIccProfile).
 */
export function stripPngMetadata(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer {
  return Buffer.concat(stripPngParts(input, options));
}

/** stripPngMetadata's pieces, in order: slices of `input` (joinParts). */
export function stripPngParts(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer[] {
  if (input.length < SIGNATURE.length || !input.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw malformed('PNG', 'bad signature');
  }
  const parts: Buffer[] = [input.subarray(0, SIGNATURE.length)];
  let width = 0;
  let height = 0;
  let frames = 0;
  let iccSeen = false;
  let pos = SIGNATURE.length;
  for (;;) {
    if (pos + 12 > input.length) {
      throw malformed('PNG', 'no IEND chunk');
    }
    const length = input.readUInt32BE(pos);
    const type = input.toString('latin1', pos + 4, pos + 8);
    const end = pos + 12 + length;
    if (length > 0x7fffffff || !CHUNK_TYPE.test(type)) {
      throw malformed('PNG', 'bad chunk header');
    }
    if (end > input.length) {
      throw malformed('PNG', `the ${type} chunk overruns the file`);
    }
    if (pos === SIGNATURE.length) {
      if (type !== 'IHDR' || length !== 13) {
        throw malformed('PNG', 'the first chunk is not IHDR');
      }
      width = input.readUInt32BE(pos + 8);
      height = input.readUInt32BE(pos + 12);
    }
    if (type === 'fcTL') {
      frames++;
    }
    const critical = (input[pos + 4] & 0x20) === 0;
    let kept = critical || KEPT_ANCILLARY.has(type);
    if (type === 'iCCP') {
      kept = !iccSeen && isAcceptableIccp(input.subarray(pos + 8, pos + 8 + length), options.maxIccBytes);
      iccSeen = true;
    }
    if (kept) {
      parts.push(input.subarray(pos, end));
    }
    pos = end;
    if (type === 'IEND') {
      break;
    }
  }
  // Each frame is composed on the full canvas, as a viewer does.
  assertWithinLimits(width, height, Math.max(frames, 1), options.maxFrames);
  return parts;
}

/** iCCP: a profile name (1–79 bytes) and NUL, compression method 0, then the zlib-compressed profile. */
function isAcceptableIccp(data: Buffer, maxIccBytes: number): boolean {
  const nul = data.indexOf(0);
  if (nul < 1 || nul > 79 || data[nul + 1] !== 0) {
    return false;
  }
  try {
    // Inflating stops just past the cap, so a small chunk can't expand into a large buffer.
    const profile = inflateSync(data.subarray(nul + 2), { maxOutputLength: maxIccBytes + 1 });
    return isAcceptableIccProfile(profile, maxIccBytes);
  } catch {
    return false;
  }
}
