import { fromBuffer } from 'file-type';
import type { ImageExt, ImageType } from './image.types';

const TYPES: Record<ImageExt, ImageType> = {
  png: { ext: 'png', mime: 'image/png' },
  jpg: { ext: 'jpg', mime: 'image/jpeg' },
  gif: { ext: 'gif', mime: 'image/gif' },
  webp: { ext: 'webp', mime: 'image/webp' },
  avif: { ext: 'avif', mime: 'image/avif' },
};

/** file-type's answers that are ours; an animated PNG is served as image/png like any PNG. */
const DETECTED = new Map<string, ImageExt>([
  ['png', 'png'],
  ['apng', 'png'],
  ['jpg', 'jpg'],
  ['gif', 'gif'],
  ['webp', 'webp'],
  ['avif', 'avif'],
]);

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const AVIF_BRANDS = new Set(['avif', 'avis']);
const HEIF_BRANDS = new Set(['mif1', 'msf1']);

/**
 * The image type judged by content only (API.md: never by file name or Content-Type); null when the bytes are
 * not one of the five accepted formats. `head` is the start of the file; 4100 bytes are enough.
 */
export async function sniffImageType(head: Buffer): Promise<ImageType | null> {
  let detected: string | undefined;
  try {
    detected = (await fromBuffer(head))?.ext;
  } catch {
    // file-type 16 lets strtok3's EndOfStreamError escape on short input instead of answering "unknown".
    detected = undefined;
  }
  const ext = (detected && DETECTED.get(detected)) || sniffByHand(head);
  return ext ? TYPES[ext] : null;
}

function sniffByHand(head: Buffer): ImageExt | null {
  // file-type walks the PNG chunks looking for acTL and gives up on a damaged one; the signature still claims
  // PNG, so the decoder judges it (processing_failed) rather than the sniffer (unsupported_type).
  if (head.length >= PNG_SIGNATURE.length && head.subarray(0, PNG_SIGNATURE.length).equals(PNG_SIGNATURE)) {
    return 'png';
  }
  return isAvifFtyp(head) ? 'avif' : null;
}

/**
 * file-type 16.5.4 knows AVIF only by the major brand `avif`: an image sequence (`avis`) comes back as mp4 and
 * a generic HEIF major brand (`mif1`) carrying `avif` among its compatible brands comes back as heic.
 */
function isAvifFtyp(head: Buffer): boolean {
  if (head.length < 16 || head.toString('latin1', 4, 8) !== 'ftyp') {
    return false;
  }
  const major = head.toString('latin1', 8, 12);
  if (AVIF_BRANDS.has(major)) {
    return true;
  }
  if (!HEIF_BRANDS.has(major)) {
    return false;
  }
  const boxEnd = Math.min(head.readUInt32BE(0), head.length);
  for (let offset = 16; offset + 4 <= boxEnd; offset += 4) {
    if (AVIF_BRANDS.has(head.toString('latin1', offset, offset + 4))) {
      return true;
    }
  }
  return false;
}
