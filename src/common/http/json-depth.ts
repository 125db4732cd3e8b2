/** Deepest nesting a JSON body may have. Our DTOs are two levels deep; the margin is for clients' own shapes. */
export const MAX_JSON_DEPTH = 32;

export const JSON_TOO_DEEP_MESSAGE = `The JSON body is nested more than ${MAX_JSON_DEPTH} levels deep.`;

const OPEN_OBJECT = 0x7b; // {
const OPEN_ARRAY = 0x5b; // [
const CLOSE_OBJECT = 0x7d; // }
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * The deepest bracket nesting of a JSON text, found in one linear pass over the raw bytes without recursion or
 * parsing (brackets inside strings don't count). Malformed text is the parser's business, not this one's.
 */
export function jsonDepth(body: Buffer): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === BACKSLASH) {
        i++;
      } else if (c === QUOTE) {
        inString = false;
      }
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      depth++;
      if (depth > max) {
        max = depth;
      }
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--;
    }
  }
  return max;
}

/** A body-parser error (it keeps `status` and `type`), rendered as 400 bad_request by the exception filter. */
export class JsonTooDeepError extends Error {
  readonly status = 400;
  readonly statusCode = 400;
  readonly expose = true;
  readonly type = 'entity.too.deep';

  constructor() {
    super(JSON_TOO_DEEP_MESSAGE);
  }
}

/**
 * body-parser's `verify` hook: it sees the raw bytes before JSON.parse, so a body nested 1500 deep is refused before
 * anything walks it recursively (class-transformer and class-validator would overflow the stack: a 3 KB request
 * costing us a 500 and an error log).
 */
export function refuseDeepJson(_req: unknown, _res: unknown, body: Buffer): void {
  if (jsonDepth(body) > MAX_JSON_DEPTH) {
    throw new JsonTooDeepError();
  }
}
