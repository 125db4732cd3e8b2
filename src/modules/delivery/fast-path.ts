import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import rangeParser from 'range-parser';
import { requestIdOf } from '../../common/http/request-id';
import type { AppConfig } from '../../config/app-config';
import { parseVariantQuery, resolveVariant, type SourceMime } from '../media/variant-params';
import type { StorageDriver } from '../storage/storage-driver';
import type { DeliveryCache } from './delivery-cache';
import { etagMatches, IMAGE_HEADERS, type ImageRepresentation } from './image-response';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const PREFIX = '/images/';
/** A query the fast path reads like Express would: plain names and values, nothing to decode. */
const PLAIN_QUERY = /^[A-Za-z0-9_.,=&-]*$/;
/** Reads of files too big to keep: fewer, larger chunks than the 64 KB default. */
const STREAM_CHUNK_BYTES = 1024 * 1024;

export interface FastPathDeps {
  cache: DeliveryCache;
  storage: StorageDriver;
  config: AppConfig;
}

/**
 * The direct link's hot path (issue 14), in front of Express: a GET or HEAD of an image whose metadata this instance
 * already holds (DeliveryCache) and whose file is on local storage (or, on S3, whose bytes it holds) is answered
 * right here — no router, no body parsers, no guards, no ORM, no per-request info log line. It answers exactly what
 * ImagesController + sendImage would (the same headers, ETag/304, Range/206, HEAD); everything else — a miss, an
 * error of any kind, a 416, a variant not made yet, a query it does not read the way Express does — goes to Express
 * untouched, which answers (and logs) it and fills the cache. So the fast path can only ever answer a success the
 * slow path would give.
 */
export function installFastPath(server: Server, deps: FastPathDeps): void {
  const slow = server.listeners('request') as Handler[];
  if (slow.length !== 1) {
    return; // Not the single Express handler we know how to wrap: leave the server as it is.
  }
  const [express] = slow;
  server.removeListener('request', express);
  const fast = fastPath(deps, express);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!fast(req, res)) {
      express(req, res);
    }
  });
}

/** Returns a handler that answers and returns true, or returns false having touched nothing. */
export function fastPath(
  deps: FastPathDeps,
  fallback: Handler,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { cache, storage, config } = deps;
  const accelPrefix = config.accelRedirectPrefix;
  const redirects = config.imagesRedirectBaseUrl !== undefined;
  return (req, res) => {
    const method = req.method;
    const url = req.url;
    // With IMAGES_REDIRECT_BASE_URL every answer is a 302 from the full path, never bytes from here.
    if ((method !== 'GET' && method !== 'HEAD') || !url?.startsWith(PREFIX) || !cache.enabled || redirects) {
      return false;
    }
    const q = url.indexOf('?');
    const filename = url.slice(PREFIX.length, q === -1 ? undefined : q);
    // Only names the slow path served are in the cache: anything else misses here.
    const upload = cache.upload(filename);
    if (!upload) {
      return false;
    }
    let image: ImageRepresentation | undefined;
    let varyAccept = false;
    const query = q === -1 ? '' : url.slice(q + 1);
    if (query === '') {
      image = originalOf(upload);
    } else {
      if (!PLAIN_QUERY.test(query)) {
        return false;
      }
      let resolved;
      try {
        resolved = resolveVariant(parseVariantQuery(parseQuery(query), config.variantSizes), {
          sourceMime: upload.mime as SourceMime,
          accept: req.headers.accept,
        });
      } catch {
        return false; // a bad parameter: the slow path answers 400
      }
      varyAccept = resolved.varyAccept;
      image = resolved.kind === 'original' ? originalOf(upload) : cache.variant(filename, resolved.key);
    }
    if (!image) {
      return false;
    }
    const file = storage.localFile(image.key);
    let stats: { size: number; mtimeMs: number } | null = null;
    let held: Buffer | undefined;
    if (file) {
      // The file must be there (and be the one the row describes) for any answer, HEAD and 304 included.
      stats = storage.localFileStats(image.key);
      if (!stats || stats.size !== image.size) {
        return false;
      }
    } else {
      // A remote store (S3): only an object whose bytes this instance holds is answered here.
      held = cache.objectBytes(image.key, image.etag);
      if (!held || held.length !== image.size) {
        return false;
      }
    }

    const headers: OutgoingHttpHeaders = {
      ...IMAGE_HEADERS,
      'X-Request-Id': requestIdOf(req),
      ETag: image.etag,
      'Last-Modified': image.lastModifiedText,
    };
    if (varyAccept) {
      headers.Vary = 'Accept';
    }
    // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
    if (etagMatches(req.headers['if-none-match'], image.etag)) {
      res.writeHead(304, headers).end();
      return true;
    }
    headers['Content-Type'] = image.mime;
    let range: { start: number; end: number } | undefined;
    const rangeHeader = req.headers.range;
    const ifRange = req.headers['if-range'];
    if (rangeHeader && (!ifRange || ifRange === image.etag)) {
      const parsed = rangeParser(image.size, rangeHeader, { combine: true });
      if (parsed === -1) {
        return false; // 416 is the slow path's
      }
      if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
        range = { start: parsed[0].start, end: parsed[0].end };
      }
    }
    const status = range ? 206 : 200;
    const start = range?.start ?? 0;
    const end = range?.end ?? image.size - 1;
    if (range) {
      headers['Content-Range'] = `bytes ${start}-${end}/${image.size}`;
    }
    headers['Content-Length'] = String(end - start + 1);
    if (method === 'HEAD') {
      res.writeHead(status, headers).end();
      return true;
    }
    if (file && !range && accelPrefix) {
      // nginx serves the bytes (README "nginx in front"): no body from us.
      headers['X-Accel-Redirect'] = `${accelPrefix}${file.relative}`;
      headers['Content-Length'] = '0';
      res.writeHead(200, headers).end();
      return true;
    }
    held ??= stats ? cache.bytesOf(image.key, image.size, stats.mtimeMs) : undefined;
    if (held) {
      res.writeHead(status, headers).end(range ? held.subarray(start, end + 1) : held);
      return true;
    }
    if (!file || !stats) {
      return false; // unreachable: a remote object is answered above or not at all
    }
    const mtimeMs = stats.mtimeMs;
    const key = image.key;
    if (cache.keepsBytes(image.size)) {
      const mark = cache.mark();
      readFile(file.path).then(
        (data) => {
          if (data.length !== image.size) {
            fallback(req, res);
            return;
          }
          cache.rememberBytes(key, data, mtimeMs, mark);
          res.writeHead(status, headers).end(range ? data.subarray(start, end + 1) : data);
        },
        () => fallback(req, res), // gone since the stat: the slow path answers 404
      );
      return true;
    }
    const stream = createReadStream(file.path, { start, end, highWaterMark: STREAM_CHUNK_BYTES });
    stream.once('open', () => {
      res.writeHead(status, headers);
      stream.pipe(res);
    });
    stream.once('error', () => {
      if (res.headersSent) {
        res.destroy();
      } else {
        fallback(req, res);
      }
    });
    res.once('close', () => stream.destroy());
    return true;
  };
}

function originalOf(upload: {
  filename: string;
  storedSha256: string;
  size: number;
  mime: string;
  createdAt: Date;
}): ImageRepresentation {
  return representation(upload.filename, upload.storedSha256, upload.size, upload.mime, upload.createdAt);
}

export function representation(
  key: string,
  sha256: string,
  size: number,
  mime: string,
  lastModified: Date,
): ImageRepresentation {
  return { key, etag: `"${sha256}"`, size, mime, lastModified, lastModifiedText: lastModified.toUTCString() };
}
