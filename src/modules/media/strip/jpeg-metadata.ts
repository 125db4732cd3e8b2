import { DEFAULT_IMAGE_OPTIONS, type StripOptions } from '../image-limits';
import { isAcceptableIccProfile } from './icc-profile';
import { malformed } from './malformed';

// sharp can only drop JPEG metadata by re-encoding the pixels, so the segments are filtered here.
const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;
const APP0 = 0xe0;
const APP2 = 0xe2;
const APP14 = 0xee;
const APP15 = 0xef;
const COM = 0xfe;

/** JFIF header without its thumbnail: identifier, version, units, densities (14 bytes) + zero thumbnail size. */
const JFIF_LENGTH = 14;
/** "ICC_PROFILE\0", then the 1-based sequence number and the count of ICC segments. */
const ICC_HEADER_LENGTH = 14;

/**
 * The JPEG without EXIF, XMP, IPTC, comments or any other APPn payload except JFIF (thumbnail removed),
 * ICC_PROFILE and Adobe; the tables, frame headers and entropy-coded scans are copied byte for byte, and
 * anything after the end-of-image marker (MPF images, appended files) is dropped. The ICC_PROFILE segments stay
 * only when they form one complete, valid profile within `maxIccBytes` (see isAcceptableIccProfile).
 */
export function stripJpegMetadata(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer {
  return Buffer.concat(stripJpegParts(input, options));
}

/** stripJpegMetadata's pieces, in order: slices of `input` wherever its bytes are kept as they are (joinParts). */
export function stripJpegParts(input: Buffer, options: StripOptions = DEFAULT_IMAGE_OPTIONS): Buffer[] {
  if (input.length < 4 || input[0] !== 0xff || input[1] !== SOI) {
    throw malformed('JPEG', 'no start-of-image marker');
  }
  const parts: Buffer[] = [input.subarray(0, 2)];
  /** ICC segments and where they were in `parts` (an empty placeholder until the profile is judged). */
  const icc: { index: number; segment: Buffer }[] = [];
  let pos = 2;
  for (;;) {
    if (input[pos] !== 0xff) {
      throw malformed('JPEG', pos >= input.length ? 'no end-of-image marker' : 'expected a marker');
    }
    while (input[pos] === 0xff) {
      pos++; // fill bytes may precede any marker
    }
    if (pos >= input.length) {
      throw malformed('JPEG', 'no end-of-image marker');
    }
    const marker = input[pos++];
    if (marker === EOI) {
      parts.push(input.subarray(pos - 2, pos)); // 0xFF EOI (fill bytes before it are dropped)
      if (
        keepIcc(
          icc.map((s) => s.segment),
          options.maxIccBytes,
        )
      ) {
        for (const { index, segment } of icc) {
          parts[index] = segment;
        }
      }
      return parts;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      parts.push(input.subarray(pos - 2, pos)); // TEM and RSTn stand alone
      continue;
    }
    if (marker === 0x00 || marker === SOI) {
      throw malformed('JPEG', 'unexpected marker');
    }
    if (pos + 2 > input.length) {
      throw malformed('JPEG', 'truncated segment');
    }
    const end = pos + input.readUInt16BE(pos);
    if (end < pos + 2 || end > input.length) {
      throw malformed('JPEG', 'a segment overruns the file');
    }
    const segment = input.subarray(pos - 2, end);
    if (marker === APP2 && startsWith(segment.subarray(4), 'ICC_PROFILE\0')) {
      icc.push({ index: parts.length, segment });
      parts.push(Buffer.alloc(0));
      pos = end;
      continue;
    }
    const kept = keptSegment(marker, segment);
    if (kept) {
      parts.push(kept);
    }
    pos = end;
    if (marker === SOS) {
      const scanEnd = findScanEnd(input, pos);
      parts.push(input.subarray(pos, scanEnd));
      pos = scanEnd;
    }
  }
}

/** The segment (marker + length + payload) as it should be stored, or null to drop it. */
function keptSegment(marker: number, segment: Buffer): Buffer | null {
  const payload = segment.subarray(4);
  if (marker === APP0) {
    if (!startsWith(payload, 'JFIF\0') || payload.length < JFIF_LENGTH) {
      return null;
    }
    // Without a thumbnail the segment already is what jfifWithoutThumbnail makes: kept as the input's own bytes, so
    // a JPEG with nothing else to strip stays whole (isWholeInput: stored as uploaded, no copy, and a small one's
    // early decode is its check and review frame instead of a second decode of a copy: a 200×150 JPEG with one took
    // 0.87–0.97 of the time end to end, side by side; bench/uploads/paired.ts, `jfif`).
    return payload.length === JFIF_LENGTH && payload[JFIF_LENGTH - 2] === 0 && payload[JFIF_LENGTH - 1] === 0
      ? segment
      : jfifWithoutThumbnail(payload);
  }
  if (marker === APP14) {
    return startsWith(payload, 'Adobe') ? segment : null;
  }
  return (marker > APP0 && marker <= APP15) || marker === COM ? null : segment;
}

/** Whether the ICC segments are numbered 1…n once each, of one count n, and join into an acceptable profile. */
function keepIcc(segments: Buffer[], maxIccBytes: number): boolean {
  if (segments.length === 0 || segments.some((s) => s.length < 4 + ICC_HEADER_LENGTH)) {
    return false;
  }
  const count = segments[0][4 + ICC_HEADER_LENGTH - 1];
  const bySequence = new Map<number, Buffer>();
  for (const segment of segments) {
    const sequence = segment[4 + ICC_HEADER_LENGTH - 2];
    if (segment[4 + ICC_HEADER_LENGTH - 1] !== count || sequence < 1 || bySequence.has(sequence)) {
      return false;
    }
    bySequence.set(sequence, segment.subarray(4 + ICC_HEADER_LENGTH));
  }
  if (bySequence.size !== count) {
    return false;
  }
  const ordered = Array.from({ length: count }, (_, i) => bySequence.get(i + 1));
  if (ordered.some((part) => part === undefined)) {
    return false;
  }
  return isAcceptableIccProfile(Buffer.concat(ordered as Buffer[]), maxIccBytes);
}

// A JFIF thumbnail is a second, uncropped copy of the picture: a privacy leak, never needed to display it.
function jfifWithoutThumbnail(payload: Buffer): Buffer {
  const segment = Buffer.alloc(4 + JFIF_LENGTH);
  segment.writeUInt16BE(0xff00 | APP0, 0);
  segment.writeUInt16BE(2 + JFIF_LENGTH, 2);
  payload.copy(segment, 4, 0, JFIF_LENGTH - 2);
  return segment;
}

/** Offset of the marker that ends the entropy-coded data starting at `from` (stuffed 0xFF00 and RSTn are data). */
function findScanEnd(input: Buffer, from: number): number {
  let i = from;
  for (;;) {
    i = input.indexOf(0xff, i);
    if (i < 0 || i + 1 >= input.length) {
      throw malformed('JPEG', 'truncated scan');
    }
    const next = input[i + 1];
    if (next === 0x00 || (next >= 0xd0 && next <= 0xd7)) {
      i += 2;
    } else if (next === 0xff) {
      i += 1;
    } else {
      return i;
    }
  }
}

function startsWith(buffer: Buffer, ascii: string): boolean {
  return buffer.length >= ascii.length && buffer.toString('latin1', 0, ascii.length) === ascii;
}
