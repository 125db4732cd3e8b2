/** ICC.1 (v2 and v4) header: 128 bytes, then the tag count and 12-byte tag entries (signature, offset, size). */
const HEADER_LENGTH = 128;
const TAG_ENTRY_LENGTH = 12;
/** Real profiles have a few dozen tags; the ICC registry defines under a hundred. */
const MAX_TAGS = 200;
/** Bytes not covered by the header, the tag table or any tag: tags are 4-byte aligned, so a few per tag. */
const SLACK_PER_TAG = 3;
const SLACK = 64;

/**
 * Whether `profile` is an ICC profile worth keeping: at most `maxBytes`, its size field equal to its length, the
 * 'acsp' signature, a major version 2–5, and a tag table whose entries all lie inside the profile and which, together
 * with the header, covers the profile (so no free-form payload can ride along between or after the tags).
 */
export function isAcceptableIccProfile(profile: Buffer, maxBytes: number): boolean {
  if (profile.length > maxBytes || profile.length < HEADER_LENGTH + 4) {
    return false;
  }
  if (profile.readUInt32BE(0) !== profile.length || profile.toString('latin1', 36, 40) !== 'acsp') {
    return false;
  }
  const major = profile[8];
  if (major < 2 || major > 5) {
    return false;
  }
  const count = profile.readUInt32BE(HEADER_LENGTH);
  const tableEnd = HEADER_LENGTH + 4 + count * TAG_ENTRY_LENGTH;
  if (count === 0 || count > MAX_TAGS || tableEnd > profile.length) {
    return false;
  }
  const spans: [number, number][] = [[0, tableEnd]];
  for (let i = 0; i < count; i++) {
    const entry = HEADER_LENGTH + 4 + i * TAG_ENTRY_LENGTH;
    const offset = profile.readUInt32BE(entry + 4);
    const size = profile.readUInt32BE(entry + 8);
    if (offset < tableEnd || size === 0 || offset + size > profile.length) {
      return false;
    }
    spans.push([offset, offset + size]);
  }
  return uncovered(spans, profile.length) <= SLACK + SLACK_PER_TAG * count;
}

/** Bytes of [0, length) that no span covers (tags may share data, so spans can overlap). */
function uncovered(spans: [number, number][], length: number): number {
  spans.sort((a, b) => a[0] - b[0]);
  let covered = 0;
  let reach = 0;
  for (const [start, end] of spans) {
    if (end > reach) {
      covered += end - Math.max(start, reach);
      reach = end;
    }
  }
  return length - covered;
}
