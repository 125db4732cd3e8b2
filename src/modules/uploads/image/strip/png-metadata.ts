import { assertWithinLimits } from '../image-limits';
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
 * Also enforces the pixel limits over all APNG frames, which sharp does not decode.
 */
export function stripPngMetadata(input: Buffer): Buffer {
  if (input.length < SIGNATURE.length || !input.subarray(0, SIGNATURE.length).equals(SIGNATURE)) {
    throw malformed('PNG', 'bad signature');
  }
  const parts: Buffer[] = [SIGNATURE];
  let width = 0;
  let height = 0;
  let frames = 0;
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
    if (critical || KEPT_ANCILLARY.has(type)) {
      parts.push(input.subarray(pos, end));
    }
    pos = end;
    if (type === 'IEND') {
      break;
    }
  }
  // Each frame is composed on the full canvas, as a viewer does.
  assertWithinLimits(width, height, Math.max(frames, 1));
  return Buffer.concat(parts);
}
