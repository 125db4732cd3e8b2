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
