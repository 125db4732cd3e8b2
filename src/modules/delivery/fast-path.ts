import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import rangeParser from 'range-parser';
import { installInFront } from '../../common/http/in-front';
import { requestIdOf } from '../../common/http/request-id';
import type { AppConfig } from '../../config/app-config';
import {
  parseVariantQuery,
  type ResolveContext,
  type ResolvedVariant,
  resolveVariant,
  type SourceMime,
} from '../media/variant-params';
import type { StorageDriver } from '../storage/storage-driver';
import type { ServableUpload } from '../uploads/uploads.service';
import type { DeliveryCache } from './delivery-cache';
import { capCacheControl, etagMatches, IMAGE_HEADERS, type ImageRepresentation } from './image-response';
import { tooManyParameters } from './query-limit';
import type { StoredVariant, VariantsService } from './variants.service';

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
  /** Renders a variant not made yet (without it, such requests go to Express). */
  variants?: VariantsService;
}

/** A cold variant's failure, kept for the slow path to answer (ImagesController takes it back). */
const failures = new WeakMap<IncomingMessage, unknown>();

/** What the fast path failed with on this request, if it did (taken once): the slow path answers it, not again. */
export function takeFastPathFailure(req: IncomingMessage): unknown {
  const failure = failures.get(req);
  failures.delete(req);
  return failure;
}

/** plan() answered the request itself (a 304). */
const ANSWERED = Symbol('answered');

/**
 * IMAGE_HEADERS as writeHead()'s flat list of names and values. Answers here pass such a list: side by side with an
 * object built per answer (and walked by writeHead for its keys), 304s went 16–23 % faster, a variant's 36 %.
 */
const IMAGE_HEADER_LIST: readonly string[] = Object.entries(IMAGE_HEADERS).flat();
/** Where Cache-Control's value sits in that list (an expiring upload's is capped, see capCacheControl). */
const CACHE_CONTROL_AT = IMAGE_HEADER_LIST.indexOf('Cache-Control') + 1;

interface Planned {
  status: 200 | 206;
  /** writeHead()'s flat list of names and values; Content-Length is its last pair. */
  headers: string[];
  start: number;
  end: number;
  range: boolean;
}

/**
 * The headers of an answer for `image` (what sendImage sends); a 304 is answered here (ANSWERED); null for a Range
 * that cannot be satisfied (416 is the slow path's).
 */
function plan(
  req: IncomingMessage,
  res: ServerResponse,
  image: ImageRepresentation,
  varyAccept: boolean,
): Planned | typeof ANSWERED | null {
  const headers = [
    ...IMAGE_HEADER_LIST,
    'X-Request-Id',
    requestIdOf(req),
    'ETag',
    image.etag,
    'Last-Modified',
    image.lastModifiedText,
  ];
  if (image.expiresAt !== null) {
    headers[CACHE_CONTROL_AT] = capCacheControl(IMAGE_HEADERS['Cache-Control'], image.expiresAt);
  }
  if (varyAccept) {
    headers.push('Vary', 'Accept');
  }
  // RFC 9110 §13.2.2: If-None-Match is evaluated before Range.
  if (etagMatches(req.headers['if-none-match'], image.etag)) {
    res.writeHead(304, headers).end();
    return ANSWERED;
  }
  headers.push('Content-Type', image.mime);
  let range: { start: number; end: number } | undefined;
  const rangeHeader = req.headers.range;
  const ifRange = req.headers['if-range'];
  if (rangeHeader && (!ifRange || ifRange === image.etag)) {
    const parsed = rangeParser(image.size, rangeHeader, { combine: true });
    if (parsed === -1) {
      return null;
    }
    if (parsed !== -2 && parsed.type === 'bytes' && parsed.length === 1) {
      range = { start: parsed[0].start, end: parsed[0].end };
    }
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? image.size - 1;
  if (range) {
    headers.push('Content-Range', `bytes ${start}-${end}/${image.size}`);
  }
  headers.push('Content-Length', String(end - start + 1));
  return { status: range ? 206 : 200, headers, start, end, range: !!range };
}

/**
 * A variant this instance does not know yet, of an upload it does: made (or found) by VariantsService as the slow
 * path would, and answered from the rendered bytes. Anything but a fresh render with an answer plan() can give —
 * a variant found stored, a 416, a failure — goes to Express, which answers it (a failure as it is, not by trying
 * again: ImagesController takes it back through takeFastPathFailure).
 */
function coldVariant(
  deps: FastPathDeps & { variants: VariantsService },
  req: IncomingMessage,
  res: ServerResponse,
  upload: ServableUpload,
  variant: ResolvedVariant & { kind: 'variant' },
  fallback: Handler,
): void {
  const { cache, variants } = deps;
  const mark = cache.mark();
  variants
    .ensure(upload, variant)
    .then(
      (stored) => {
        if (!stored.data || !stored.saved) {
          fallback(req, res); // stored already: the slow path reads it from storage (and remembers it)
          return;
        }
        const image = variantOf(upload, stored);
        void stored.saved.then((ok) => ok && cache.rememberVariant(upload, variant.key, image, mark));
        const planned = plan(req, res, image, variant.varyAccept);
        if (planned === null) {
          fallback(req, res);
        } else if (planned !== ANSWERED) {
          const body =
            req.method === 'HEAD'
              ? undefined
              : planned.range
                ? stored.data.subarray(planned.start, planned.end + 1)
                : stored.data;
          res.writeHead(planned.status, planned.headers).end(body);
        }
      },
      (error: unknown) => {
        failures.set(req, error);
        fallback(req, res);
      },
    )
    // Writing the answer failed (the client went away): nothing more can be said on this socket.
    .catch(() => res.destroy());
}

/**
 * The direct link's hot path (issue 14), in front of Express: a GET or HEAD of an image whose metadata this instance
 * already holds (DeliveryCache) and whose file is on local storage (or, on S3, whose bytes it holds) is answered
 * right here — no router, no body parsers, no guards, no ORM, no per-request info log line. It answers exactly what
 * ImagesController + sendImage would (the same headers, ETag/304, Range/206, HEAD); everything else — a miss, an
 * error of any kind, a 416, a query it does not read the way Express does — goes to Express untouched, which answers
 * (and logs) it and fills the cache. So the fast path can only ever answer a success the slow path would give.
 *
 * A variant not made yet, of an upload whose row it holds, it has VariantsService make as the controller would, and
 * answers from the rendered bytes (coldVariant): Express and Nest cost more than half a millisecond before the
 * render could start. Whatever it cannot answer then still goes to Express, a failure with it (see coldVariant).
 */
export function installFastPath(server: Server, deps: FastPathDeps): void {
  installInFront(server, (express) => fastPath(deps, express));
}

/** Returns a handler that answers and returns true, or returns false having touched nothing. */
export function fastPath(
  deps: FastPathDeps,
  fallback: Handler,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { cache, storage, config, variants } = deps;
  const accelPrefix = config.accelRedirectPrefix;
  const redirects = config.imagesRedirectBaseUrl !== undefined;
  const resolve = variantResolver(config.variantSizes);
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
    let resolved: ResolvedVariant | undefined;
    const query = q === -1 ? '' : url.slice(q + 1);
    if (query === '') {
      image = originalOf(upload);
    } else {
      const found = resolve(query, upload, req.headers.accept);
      if (!found) {
        return false; // the slow path reads it (and answers 400 for a bad parameter)
      }
      resolved = found;
      varyAccept = resolved.varyAccept;
      image = resolved.kind === 'original' ? originalOf(upload) : cache.variant(filename, resolved.key);
    }
    if (!image) {
      // Not made yet when the row was read (nor by this instance since): made here. One stored is read by Express.
      if (
        resolved?.kind === 'variant' &&
        variants &&
        !accelPrefix &&
        !upload.storedVariants?.has(resolved.key)
      ) {
        coldVariant({ ...deps, variants }, req, res, upload, resolved, fallback);
        return true;
      }
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

    const planned = plan(req, res, image, varyAccept);
    if (planned === null) {
      return false; // 416 is the slow path's
    }
    if (planned === ANSWERED) {
      return true;
    }
    const { status, headers, start, end, range } = planned;
    if (method === 'HEAD') {
      res.writeHead(status, headers).end();
      return true;
    }
    if (file && !range && accelPrefix) {
      // nginx serves the bytes (README "nginx in front"): no body from us.
      const accel = headers.slice(0, -2); // without the file's Content-Length
      accel.push('Content-Length', '0', 'X-Accel-Redirect', `${accelPrefix}${file.relative}`);
      res.writeHead(200, accel).end();
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

/** Resolutions a fast path keeps: far more than the queries a site's pages use. */
export const MAX_RESOLUTIONS = 1_000;
/** Longer queries and Accept headers are resolved each time, not kept: with the count, at most about 1 MB kept. */
const MAX_KEPT_ID_CHARS = 512;

/**
 * resolveVariant for a direct link's query, as ImagesController resolves it (the same key for the same request on
 * either path), or null where the slow path must read the query: one not plain, past the parser's key limit (whose
 * parameters would go unread: 400 there), or with a bad parameter (400 there).
 *
 * Each answer is kept by everything it depends on (the query, the original's type, whether it is animated, Accept),
 * so a query asked again is not parsed again: parsing and resolving were a twentieth of a warm variant's 304. The
 * results are shared between requests, frozen. Past MAX_RESOLUTIONS (a client inventing queries or Accept
 * headers) the map starts again; a query and Accept longer than MAX_KEPT_ID_CHARS together are never kept.
 */
export function variantResolver(
  variantSizes: readonly number[],
): (query: string, upload: ServableUpload, accept: string | undefined) => ResolvedVariant | null {
  const kept = new Map<string, ResolvedVariant | null>();
  return (query, upload, accept) => {
    const animated = upload.pages === null ? undefined : upload.pages > 1;
    // A line break cannot be part of any of them (a request line or a header value).
    const id = `${upload.mime}\n${animated}\n${query}\n${accept ?? ''}`;
    let resolved = kept.get(id);
    if (resolved === undefined) {
      resolved = resolveQuery(query, variantSizes, {
        sourceMime: upload.mime as SourceMime,
        accept,
        animated,
      });
      if (id.length <= MAX_KEPT_ID_CHARS) {
        if (kept.size >= MAX_RESOLUTIONS) {
          kept.clear();
        }
        kept.set(id, resolved);
      }
    }
    return resolved;
  };
}

function resolveQuery(
  query: string,
  variantSizes: readonly number[],
  context: ResolveContext,
): ResolvedVariant | null {
  if (!PLAIN_QUERY.test(query) || tooManyParameters(query)) {
    return null;
  }
  let resolved: ResolvedVariant;
  try {
    resolved = resolveVariant(parseVariantQuery(parseQuery(query), variantSizes), context);
  } catch {
    return null;
  }
  // Shared by every request that asks the same: nobody may change it.
  if (resolved.kind === 'variant') {
    Object.freeze(resolved.spec);
  }
  return Object.freeze(resolved);
}

/**
 * Originals already described, per row object: the fast path answers many requests from one cached row, and building
 * the description (its Last-Modified text above all) was a few per cent of a 304's CPU. The fields it reads never
 * change on a row, and an entry goes with its row.
 */
const originals = new WeakMap<ServableUpload, ImageRepresentation>();

/** An upload's original as a direct link answers it. */
export function originalOf(upload: ServableUpload): ImageRepresentation {
  let image = originals.get(upload);
  if (!image) {
    image = representation(
      upload.filename,
      upload.storedSha256,
      upload.size,
      upload.mime,
      upload.createdAt,
      upload.expiresAt,
    );
    originals.set(upload, image);
  }
  return image;
}

/** A stored variant of an upload as a direct link answers it (cached no longer than its upload lives). */
export function variantOf(upload: ServableUpload, stored: StoredVariant): ImageRepresentation {
  return representation(
    stored.storageKey,
    stored.sha256,
    stored.size,
    stored.mime,
    stored.createdAt,
    upload.expiresAt,
  );
}

export function representation(
  key: string,
  sha256: string,
  size: number,
  mime: string,
  lastModified: Date,
  expiresAt: Date | null,
): ImageRepresentation {
  return {
    key,
    etag: `"${sha256}"`,
    size,
    mime,
    lastModified,
    lastModifiedText: lastModified.toUTCString(),
    expiresAt,
  };
}
