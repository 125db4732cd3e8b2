/**
 * The pages' Content-Security-Policy: scripts, styles and API calls from this origin only (no inline script, no
 * eval, no inline <style>), images also from data: and blob: (previews of files about to be uploaded), and no
 * framing (clickjacking). `imageOrigins` adds where /images may redirect to.
 */
export function contentSecurityPolicy(imageOrigins: string[] = []): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    ['img-src', "'self'", 'data:', 'blob:', ...imageOrigins].join(' '),
    "connect-src 'self'",
    "font-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}

/** index.html: always revalidated, so a deploy takes effect on the next visit. */
export const PAGE_CACHE_CONTROL = 'no-cache';
/** Hashed asset names change with their content: cache them for a year. */
export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';
