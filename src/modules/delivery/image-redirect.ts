import type { Response } from 'express';
import { capCacheControl, type ImageRepresentation } from './image-response';

/**
 * How long a client or CDN may keep a redirect: short, so a deleted image stops being pointed at soon (and never
 * past an expiring upload's expiry).
 */
const REDIRECT_CACHE_CONTROL = 'public, max-age=300';

/**
 * IMAGES_REDIRECT_BASE_URL: 302 to the stored object at a CDN or public bucket (`<base>/<storage key>`) instead of
 * streaming it. The lookup (404 for a deleted or unknown image, 400 for bad variant parameters) and a variant's
 * render still happen here; ETag, 304, Range and the security headers are then the CDN's or the store's to send.
 */
export function redirectImage(baseUrl: string, image: ImageRepresentation, res: Response): void {
  res.setHeader('Cache-Control', capCacheControl(REDIRECT_CACHE_CONTROL, image.expiresAt));
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.redirect(302, `${baseUrl}/${encodeURIComponent(image.key)}`);
}
