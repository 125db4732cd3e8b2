/**
 * The server's tag rules (src/modules/uploads/tags.ts, API.md: at most 10, each 1–32 of [a-z0-9_-], lower-cased),
 * checked here so a bad tag is told next to its field before a byte is sent. The server still decides.
 */
export const TAG_PATTERN = /^[a-z0-9_-]{1,32}$/;
export const MAX_TAGS = 10;

const TAG_RULE = 'must be 1–32 characters of a-z, 0-9, "_" or "-".';

/** A–Z lower-cased and nothing else, as the server does: toLowerCase() turns the Kelvin sign into a "k". */
export function asciiLowerCase(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** The upload form's comma-separated tags: null when the server would take them, else its sentence. */
export function tagListError(raw: string): string | null {
  if (raw.trim() === '') {
    return null;
  }
  const tags = [...new Set(raw.split(',').map((t) => asciiLowerCase(t.trim())))];
  if (tags.length > MAX_TAGS) {
    return `At most ${MAX_TAGS} tags.`;
  }
  if (tags.some((t) => !TAG_PATTERN.test(t))) {
    return `Each tag ${TAG_RULE}`;
  }
  return null;
}

/** The gallery filter's one tag (already trimmed and lower-cased): null when valid, else the sentence. */
export function tagError(tag: string): string | null {
  return TAG_PATTERN.test(tag) ? null : `A tag ${TAG_RULE}`;
}
