import fresh from 'fresh';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as PinoLogger } from 'pino';
import type { AuthedRequest } from '../../common/auth/current-principal.decorator';
import { requestId } from '../../common/http/request-id';
import { requestLogProps } from '../../common/logging/logger-options';

/**
 * What the paths in front of Express (read-fast-path.ts, upload-fast-path.ts) share: the request-log line and the
 * JSON answer, as Express and pino-http make them.
 */

/** An API key in the form the bearer strategy reads (any other credential, or form, goes to Express). */
export const BEARER_KEY = /^Bearer (fxf_[A-Za-z0-9_-]{1,200})$/;

/** Express's settings the answers repeat: the ETag of a JSON answer. */
export type EtagOf = (body: Buffer, encoding?: BufferEncoding) => string | undefined;

/**
 * The request's log line once it is answered: the line pino-http writes for Express's answers (the same logger,
 * serializers, props, keys in the same order, level and message), written without the two child loggers pino-http
 * makes per request (a tenth of the read path's CPU in a profile). Sets the request's id (X-Request-Id).
 */
export function logAnswer(log: PinoLogger, req: AuthedRequest, res: ServerResponse): void {
  (req as { id?: string }).id = requestId(req, res);
  const started = Date.now();
  let done = false;
  const line = (): void => {
    if (done) {
      return;
    }
    done = true;
    const responseTime = Date.now() - started;
    const props = requestLogProps(req, res);
    if (res.statusCode >= 500) {
      const err = new Error(`failed with status code ${res.statusCode}`);
      log.info({ req, ...props, res, err, responseTime }, 'request errored');
    } else {
      log.info({ req, ...props, res, responseTime }, 'request completed');
    }
  };
  res.once('finish', line);
  res.once('close', line);
}

/**
 * What Express's res.json() sends with status 200: the JSON, its weak ETag, and for a GET or HEAD a 304 when the
 * client's copy is that one (Express's req.fresh is false for any other method).
 */
export function answerJson(req: IncomingMessage, res: ServerResponse, value: unknown, etagOf: EtagOf): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', String(body.length));
  const etag = etagOf(body, 'utf8');
  if (etag) {
    res.setHeader('ETag', etag);
  }
  if ((req.method === 'GET' || req.method === 'HEAD') && fresh(req.headers, { etag })) {
    for (const name of ['Content-Type', 'Content-Length', 'Transfer-Encoding']) {
      res.removeHeader(name);
    }
    res.statusCode = 304;
    res.end();
    return;
  }
  res.statusCode = 200;
  res.end(body);
}
