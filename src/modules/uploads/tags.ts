import { AppError } from '../../common/errors/app-error';

export const TAG_PATTERN = /^[a-z0-9_-]{1,32}$/;
export const TAG_MAX_LENGTH = 32;
export const MAX_TAGS = 10;

/** One tag as a client may send it: any case, since the service lower-cases it. */
const SENT_TAG = `[A-Za-z0-9_-]{1,${TAG_MAX_LENGTH}}`;

/** For the OpenAPI document: a tag that is lower-cased but not trimmed (the `tag` filter). */
export const SENT_TAG_PATTERN = `^${SENT_TAG}$`;
/** For the OpenAPI document: a tag that is trimmed, then lower-cased (normaliseTags: PATCH's list). */
export const TRIMMED_TAG_PATTERN = `^\\s*${SENT_TAG}\\s*$`;
/** For the OpenAPI document: the multipart `tags` part as parseTags reads it: blank, or 1–10 tags split by commas. */
export const TAGS_PART_PATTERN = `^\\s*(?:${SENT_TAG}\\s*(?:,\\s*${SENT_TAG}\\s*){0,${MAX_TAGS - 1}})?$`;

/**
 * A–Z lower-cased, nothing else: String#toLowerCase would turn a few non-ASCII letters into the alphabet (the Kelvin
 * sign "\u212A" into "k"), and a tag must be ASCII as sent.
 */
export function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** Normalises a tag list (API.md: at most 10, each 1–32 of [a-z0-9_-], lower-cased); throws bad_request. */
export function normaliseTags(input: readonly string[]): string[] {
  const tags = [...new Set(input.map((t) => asciiLowerCase(t.trim())))];
  if (tags.length > MAX_TAGS) {
    throw new AppError('bad_request', `At most ${MAX_TAGS} tags.`);
  }
  const bad = tags.find((t) => !TAG_PATTERN.test(t));
  if (bad !== undefined) {
    throw new AppError('bad_request', 'Each tag must be 1–32 characters of a-z, 0-9, "_" or "-".');
  }
  return tags;
}

/** Parses the multipart `tags` text part: comma-separated; absent or blank means no tags. */
export function parseTags(raw: string | undefined): string[] {
  if (raw === undefined || raw.trim() === '') {
    return [];
  }
  return normaliseTags(raw.split(','));
}
