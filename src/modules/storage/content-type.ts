import { VARIANT_SEPARATOR } from './variant-keys';

const TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  webp: 'image/webp',
  avif: 'image/avif',
};

/**
 * The media type of a stored key, from its name alone: an original's extension (`FIXITFY-….png`), a variant's
 * format, the last part of its key (`…png__w320_h0_inside_webp`). Stores keep it with the object, so a CDN or a
 * public bucket (IMAGES_REDIRECT_BASE_URL) answers with the right type.
 */
export function contentTypeOfKey(key: string): string {
  const at = key.indexOf(VARIANT_SEPARATOR);
  const ext = at === -1 ? key.slice(key.lastIndexOf('.') + 1) : key.slice(key.lastIndexOf('_') + 1);
  return TYPES[ext.toLowerCase()] ?? 'application/octet-stream';
}

/** What the service sends for image bytes; written with every object too, for what serves them without it. */
export const IMAGE_CACHE_CONTROL = 'public, max-age=86400';

/**
 * The Cache-Control an object is written with. The service caps its own answers at an upload's expiry
 * (capCacheControl), but an object's header is fixed when it is written, and a `max-age` counts from each fetch: a
 * CDN (or a browser sent by IMAGES_REDIRECT_BASE_URL) fetching an expiring image an hour before its expiry would keep
 * it for a day after it. So an expiring upload's objects are written `no-cache`: every reuse asks the store first,
 * which answers 304 while the object is there and 404 once the expiry sweep has removed it. (An `Expires` date
 * instead would let a delete before the expiry go unnoticed until then, for up to the upload's whole life.)
 */
export function objectCacheControl(expiresAt: Date | null | undefined): string {
  return expiresAt ? 'public, no-cache' : IMAGE_CACHE_CONTROL;
}
