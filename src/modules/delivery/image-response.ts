import type { Request, Response } from 'express';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import rangeParser from 'range-parser';
import { AppError } from '../../common/errors/app-error';
import type { StorageDriver } from '../storage/storage-driver';

/** The headers of every image answer, 304 included (the fast path sends the same). */
export const IMAGE_HEADERS = {
  'Cache-Control': 'public, max-age=86400',
  'X-Content-Type-Options': 'nosniff',
  'Accept-Ranges': 'bytes',
  'Content-Security-Policy': "default-src 'none'; style-src 'unsafe-inline'; sandbox",
} as const;

/** What the response needs to know about one stored representation (an original or a variant). */
export interface ImageRepresentation {
  /** The storage key of the bytes. */
  key: string;
  /** The strong validator, quoted. */
  etag: string;
  size: number;
  mime: string;
  lastModified: Date;
  /** lastModified as the Last-Modified header spells it. */
  lastModifiedText: string;
  /** Its upload's expiry (null: never): caches may keep the answer only until then (capCacheControl). */
  expiresAt: Date | null;
}

/**
 * `cacheControl` with its max-age and s-maxage capped at the whole seconds left until `expiresAt`, and without
 * `immutable` once capped: API.md Part 3, an expired upload answers 404 everywhere at its time, so no browser or
 * CDN may keep its bytes past it. Unchanged when nothing is capped (no expiry, or more time left than allowed).
 */
export function capCacheControl(cacheControl: string, expiresAt: Date | null, now = Date.now()): string {
  if (expiresAt === null) {
    return cacheControl;
  }
  const left = Math.max(0, Math.floor((expiresAt.getTime() - now) / 1000));
  let capped = false;
  const directives = cacheControl.split(',').map((directive) => {
    const [name, value] = directive.trim().split('=');
    if ((name === 'max-age' || name === 's-maxage') && Number(value) > left) {
      capped = true;
      return `${name}=${left}`;
    }
    return directive.trim();
  });
  return capped ? directives.filter((d) => d !== 'immutable').join(', ') : cacheControl;
}

/**
 * Answers GET/HEAD for stored image bytes: ETag/If-None-Match (304), Range/If-Range (206/416), HEAD.
 * Representation headers (type, length, ETag, caching) go out only once the stored bytes are open: a row whose
 * file is missing answers the 404 envelope with `Cache-Control: no-store`, never a cacheable "image". HEAD and
 * 304 open the file too, so they never vouch for bytes that aren't there. With `accelPrefix` (nginx in front) a
 * full GET of a local file hands the bytes to nginx by `X-Accel-Redirect`.
 */
export async function sendImage(
  storage: StorageDriver,
  image: ImageRepresentation,
  req: Request,
  res: Response,
  withBody: boolean,
  accelPrefix?: string,
  keep?: (data: Buffer) => void,
): Promise<void> {
  const { notModified, range, unsatisfiable } = negotiate(image, req);
  const stream = await storage.get(image.key, range);
  if (!stream) {
    throw new AppError('not_found', 'No such image.');
  }
  if (keep && withBody && !notModified && !unsatisfiable && !range) {
    // A small object of a remote store: read whole, handed to `keep` (DeliveryCache) and answered from memory.
    const data = await readAll(stream, image.size);
    keep(data);
    sendImageBytes(image, data, req, res, withBody);
    return;
  }
  const accel =
    accelPrefix && withBody && !notModified && !unsatisfiable && !range ? storage.localFile(image.key) : null;
  if (!withBody || notModified || unsatisfiable || accel) {
    // A stream opens its file on a later tick: destroyed before that, it still reports an open that fails (the file
    // deleted since the driver checked it), and an 'error' nobody listens to would end the process.
    stream.once('error', () => undefined);
    stream.destroy();
  }
  if (!writeHead(image, res, { notModified, range, unsatisfiable })) {
    return;
  }
  if (accel) {
    // nginx serves the bytes (README "nginx in front"): no body from us.
    res.setHeader('X-Accel-Redirect', `${accelPrefix}${accel.relative}`);
    res.setHeader('Content-Length', '0');
    res.end();
    return;
  }
  if (!withBody) {
    res.end();
    return;
  }
  await pipeline(stream, res).catch(() => res.destroy());
}

/**
 * Answers like sendImage for bytes already in memory (a variant this request just rendered and stored): the same
 * headers, 304, Range/206 and 416, no read back from storage.
 */
export function sendImageBytes(
  image: ImageRepresentation,
  data: Buffer,
  req: Request,
  res: Response,
  withBody: boolean,
): void {
  const negotiated = negotiate(image, req);
  if (!writeHead(image, res, negotiated)) {
    return;
  }
  const { range } = negotiated;
  res.end(withBody ? (range ? data.subarray(range.start, range.end + 1) : data) : undefined);
}

/** All of a stored object's bytes; 503 when the store fails mid-read or sends another length than the row's. */
async function readAll(stream: Readable, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of stream) {
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    throw new AppError('unavailable', 'The stored image could not be read; try again shortly.', {
      cause: error,
    });
  }
  const data = Buffer.concat(chunks);
  if (data.length !== size) {
    throw new AppError('unavailable', 'The stored image could not be read; try again shortly.');
  }
  return data;
}

interface Negotiated {
  notModified: boolean;
  range: { start: number; end: number } | undefined;
  unsatisfiable: boolean;
}

/** ETag/If-None-Match, then Range/If-Range (RFC 9110 §13.2.2: If-None-Match is evaluated before Range). */
function negotiate(image: ImageRepresentation, req: Request): Negotiated {
  const notModified = etagMatches(req.header('if-none-match'), image.etag);
  let range: { start: number; end: number } | undefined;
  let unsatisfiable = false;
  const rangeHeader = req.header('range');
  const ifRange = req.header('if-range');
  if (!notModified && rangeHeader && (!ifRange || ifRange === image.etag)) {
    const parsed = rangeParser(image.size, rangeHeader, { combine: true });
    unsatisfiable = parsed === -1;
    // One range is served as 206; a malformed header or several ranges get the whole file (RFC 9110 allows it).
    if (parsed !== -1 && parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      range = { start: parsed[0].start, end: parsed[0].end };
    }
  }
  return { notModified, range, unsatisfiable };
}

/**
 * Status and headers; throws the 416 envelope, ends a 304 and returns false then. True: the caller sends the body
 * (or ends a HEAD).
 */
function writeHead(
  image: ImageRepresentation,
  res: Response,
  { notModified, range, unsatisfiable }: Negotiated,
): boolean {
  const { etag, size } = image;
  if (unsatisfiable) {
    throw new AppError('range_not_satisfiable', undefined, {
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  res.setHeader('ETag', etag);
  for (const [name, value] of Object.entries(IMAGE_HEADERS)) {
    res.setHeader(name, value);
  }
  if (image.expiresAt !== null) {
    res.setHeader('Cache-Control', capCacheControl(IMAGE_HEADERS['Cache-Control'], image.expiresAt));
  }
  res.setHeader('Last-Modified', image.lastModifiedText);
  if (notModified) {
    res.status(304).end();
    return false;
  }
  res.setHeader('Content-Type', image.mime);
  if (range) {
    res.status(206);
    res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    res.setHeader('Content-Length', String(range.end - range.start + 1));
  } else {
    res.status(200);
    res.setHeader('Content-Length', String(size));
  }
  return true;
}

export function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) {
    return false;
  }
  // What a client sends back is almost always the one ETag it was given: no list to split.
  if (header === etag) {
    return true;
  }
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v === etag || v === `W/${etag}`;
  });
}
