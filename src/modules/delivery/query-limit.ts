import { AppError } from '../../common/errors/app-error';

/**
 * Query parameters a direct link takes at most. Express's query parser (node:querystring) stops at 1000 and drops
 * the rest, `&&` included, so `w=7` after 1000 others would go unchecked and answer the original: past this limit
 * the answer is 400 `bad_request` instead. Far above what a link carries (four variant parameters, a cache buster).
 */
export const MAX_QUERY_PARAMETERS = 100;

/** Whether the raw query (after `?`) has more than MAX_QUERY_PARAMETERS parameters, empty ones counted. */
export function tooManyParameters(query: string): boolean {
  // n parameters need n - 1 separators: a shorter query can't have too many.
  if (query.length < MAX_QUERY_PARAMETERS) {
    return false;
  }
  let separators = 0;
  for (let at = query.indexOf('&'); at !== -1; at = query.indexOf('&', at + 1)) {
    if (++separators >= MAX_QUERY_PARAMETERS) {
      return true;
    }
  }
  return false;
}

/** Throws 400 `bad_request` naming the limit when the URL's query has too many parameters. */
export function checkParameterCount(url: string): void {
  const q = url.indexOf('?');
  if (q !== -1 && tooManyParameters(url.slice(q + 1))) {
    throw new AppError(
      'bad_request',
      `Too many query parameters: a direct link takes at most ${MAX_QUERY_PARAMETERS}.`,
    );
  }
}
