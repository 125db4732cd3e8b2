import Negotiator from 'negotiator';
import { MediaError } from './media-error';

/** API.md Part 3, "Variants on the direct link": the widths and heights allowed unless configured otherwise. */
export const DEFAULT_VARIANT_SIZES: readonly number[] = [64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560];

export const VARIANT_FITS = ['inside', 'cover'] as const;
export const VARIANT_FORMATS = ['webp', 'avif', 'jpeg', 'png', 'auto'] as const;

export type VariantFit = (typeof VARIANT_FITS)[number];
export type RequestedFormat = (typeof VARIANT_FORMATS)[number];

/** The stored originals' types (the upload formats); declared here so media/ does not depend on uploads/. */
export type SourceMime = 'image/png' | 'image/jpeg' | 'image/gif' | 'image/webp' | 'image/avif';

/** What a variant is encoded as: a requested format, or the original's own (gif only that way). */
export type OutputFormat = 'webp' | 'avif' | 'jpeg' | 'png' | 'gif';
export type VariantMime = SourceMime;

/** The four parameters as asked; `format: null` keeps the original's format. */
export interface VariantQuery {
  width: number | null;
  height: number | null;
  fit: VariantFit;
  format: RequestedFormat | null;
}

export type ParsedVariantQuery = { kind: 'original' } | ({ kind: 'variant' } & VariantQuery);

/** What renderVariant renders: the query with `format` resolved against the original and `Accept`. */
export interface VariantSpec {
  width: number | null;
  height: number | null;
  fit: VariantFit;
  format: OutputFormat;
}

export type ResolvedVariant =
  | { kind: 'original'; varyAccept: boolean }
  | { kind: 'variant'; varyAccept: boolean; spec: VariantSpec; key: string; mime: VariantMime };

export interface ResolveContext {
  sourceMime: SourceMime;
  /** The request's `Accept` header; only read for `format=auto`. */
  accept?: string;
  /**
   * The original has more than one frame: `auto` then never picks AVIF (sharp writes no AVIF sequence). Unknown
   * (undefined) counts as animated for a GIF or WebP original, so a caller that has not read the frame count
   * never turns an animation into a still.
   */
  animated?: boolean;
}

const MIME: Record<OutputFormat, VariantMime> = {
  webp: 'image/webp',
  avif: 'image/avif',
  jpeg: 'image/jpeg',
  png: 'image/png',
  gif: 'image/gif',
};

const FORMAT_OF: Record<SourceMime, OutputFormat> = {
  'image/webp': 'webp',
  'image/avif': 'avif',
  'image/jpeg': 'jpeg',
  'image/png': 'png',
  'image/gif': 'gif',
};

export function mimeOfFormat(format: OutputFormat): VariantMime {
  return MIME[format];
}

export function formatOfMime(mime: SourceMime): OutputFormat {
  return FORMAT_OF[mime];
}

/**
 * Reads `w`, `h`, `fit` and `format` from Express's `req.query`. Other parameters (cache busters such as `v=3`,
 * tracking parameters a CDN or a share button appends) are ignored and never select a variant; only these four
 * names, lower case, do. Values must be spelled exactly as allowed (`w=320`, not `0320`, `320.0` or `W=320`),
 * given once. Every bad value throws `MediaError('bad_request')` naming what is allowed.
 *
 * `fit=cover` needs both `w` and `h` (a crop to one side is meaningless); `fit=inside` alone, the default spelled
 * out, selects nothing and answers the original.
 */
export function parseVariantQuery(
  query: Readonly<Record<string, unknown>>,
  allowedSizes: readonly number[] = DEFAULT_VARIANT_SIZES,
): ParsedVariantQuery {
  const width = parseSize(query, 'w', allowedSizes);
  const height = parseSize(query, 'h', allowedSizes);
  const fit = parseEnum(query, 'fit', VARIANT_FITS) ?? 'inside';
  const format = parseEnum(query, 'format', VARIANT_FORMATS);
  if (fit === 'cover' && (width === null || height === null)) {
    throw new MediaError('bad_request', 'fit=cover needs both w and h.');
  }
  if (width === null && height === null && format === null) {
    return { kind: 'original' };
  }
  return { kind: 'variant', width, height, fit, format };
}

/**
 * Settles the format and the canonical key. A query that would re-encode the original at its own size in its
 * own format (`?format=png` on a PNG, or `auto` that falls back to the original's format) answers the original,
 * byte for byte. `varyAccept` is true whenever `format=auto` was asked, original or not.
 */
export function resolveVariant(parsed: ParsedVariantQuery, context: ResolveContext): ResolvedVariant {
  if (parsed.kind === 'original') {
    return { kind: 'original', varyAccept: false };
  }
  const varyAccept = parsed.format === 'auto';
  const original = formatOfMime(context.sourceMime);
  let format: OutputFormat;
  if (parsed.format === 'auto') {
    format = negotiateFormat(context.accept, context.sourceMime, { animated: context.animated });
  } else {
    format = parsed.format ?? original;
  }
  if (parsed.width === null && parsed.height === null && format === original) {
    return { kind: 'original', varyAccept };
  }
  const spec: VariantSpec = { width: parsed.width, height: parsed.height, fit: parsed.fit, format };
  return { kind: 'variant', varyAccept, spec, key: variantKey(spec), mime: MIME[format] };
}

/**
 * A stable name for a variant, e.g. `w320_h0_inside_webp`: every spelling of the same request (parameter order,
 * defaults spelled out or left out, `auto` or the format it chose) gives the same key. Only `[a-z0-9_]`, so it
 * can be part of a storage key as is.
 */
export function variantKey(spec: VariantSpec): string {
  return `w${spec.width ?? 0}_h${spec.height ?? 0}_${spec.fit}_${spec.format}`;
}

/**
 * `format=auto`: AVIF if the client accepts it, then WebP, else the original's own format (even if the client
 * did not list it: the original is what the direct link serves anyway; there is no 406).
 *
 * AVIF and WebP count only when the `Accept` header names them with q > 0. Wildcards (`image/*` and the
 * catch-all) never select them: browsers that could not decode WebP or AVIF (Safari before 14 and 16, old Edge) send `image/*`
 * and would get bytes they cannot show. q-values are otherwise not ranked against each other: the server's
 * order (smaller first) wins among the formats the client names. Parsing is `negotiator`'s, Express's own.
 * An animated original (or a GIF or WebP one whose frame count the caller does not pass) never becomes AVIF.
 */
export function negotiateFormat(
  accept: string | undefined,
  sourceMime: SourceMime,
  options: { animated?: boolean } = {},
): OutputFormat {
  if (accept) {
    const negotiator = new Negotiator({ headers: { accept } });
    // Without arguments: the types the header lists with q > 0, wildcards as written.
    const named = new Set(negotiator.mediaTypes().map((type) => type.toLowerCase()));
    const accepted = (mime: VariantMime) => named.has(mime) && negotiator.mediaTypes([mime]).length > 0;
    // sharp writes no AVIF sequence: an animation as AVIF would lose all but its first frame.
    const animated = options.animated ?? (sourceMime === 'image/gif' || sourceMime === 'image/webp');
    if (!animated && accepted('image/avif')) {
      return 'avif';
    }
    if (accepted('image/webp')) {
      return 'webp';
    }
  }
  return FORMAT_OF[sourceMime];
}

function single(
  query: Readonly<Record<string, unknown>>,
  name: string,
  allowed: () => string,
): string | null {
  // Own properties only: `?__proto__=…` or a polluted prototype must not read as a parameter.
  if (!Object.hasOwn(query, name) || query[name] === undefined) {
    return null;
  }
  const value = query[name];
  if (typeof value !== 'string') {
    // `?w=1&w=2` arrives as an array, `?w[a]=1` as an object (extended query parser).
    throw new MediaError('bad_request', `${name} must be given once, as ${allowed()}.`);
  }
  return value;
}

function parseSize(
  query: Readonly<Record<string, unknown>>,
  name: 'w' | 'h',
  allowedSizes: readonly number[],
): number | null {
  // The message is written only when it is sent: joining the sizes on every direct link was 3 % of a variant's 304.
  const allowed = (): string => `one of ${allowedSizes.join(', ')} (pixels)`;
  const raw = single(query, name, allowed);
  if (raw === null) {
    return null;
  }
  const size = Number(raw);
  // Spelled exactly as allowed: `0320`, `320.0` or ` 320` are not `320`.
  if (String(size) !== raw || !allowedSizes.includes(size)) {
    throw new MediaError('bad_request', `${name} must be ${allowed()}.`);
  }
  return size;
}

function parseEnum<T extends string>(
  query: Readonly<Record<string, unknown>>,
  name: string,
  values: readonly T[],
): T | null {
  const allowed = (): string => `one of ${values.join(', ')}`;
  const raw = single(query, name, allowed);
  if (raw === null) {
    return null;
  }
  const value = values.find((candidate) => candidate === raw);
  if (value === undefined) {
    throw new MediaError('bad_request', `${name} must be ${allowed()}.`);
  }
  return value;
}
