import fresh from 'fresh';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger as PinoLogger } from 'pino';
import proxyAddr from 'proxy-addr';
import type { AuthedRequest } from '../../common/auth/current-principal.decorator';
import type { KeyPrincipal } from '../../common/auth/principal';
import { requestId } from '../../common/http/request-id';
import { requestLogProps } from '../../common/logging/logger-options';
import { observeAnswer } from '../../common/metrics/http-metrics.middleware';
import type { Metrics } from '../../common/metrics/metrics.service';

/**
 * What the paths in front of Express (read-fast-path.ts, upload-fast-path.ts) share: the settings they answer with
 * (FrontDeps), taking a request once its key is known (takeRequest), and the request-log line and the JSON answer,
 * as Express and pino-http make them.
 */

/** An API key in the form the bearer strategy reads (any other credential, or form, goes to Express). */
export const BEARER_KEY = /^Bearer (fxf_[A-Za-z0-9_-]{1,200})$/;

/** Express's settings the answers repeat: the ETag of a JSON answer. */
export type EtagOf = (body: Buffer, encoding?: BufferEncoding) => string | undefined;

/** What a path in front of Express answers with, from the app (app.setup's frontDeps). */
export interface FrontDeps {
  /** Express's settings: the ETag of a JSON answer, and the client address behind trusted proxies. */
  etag: EtagOf;
  trustProxy: (addr: string, i: number) => boolean;
  /** The request log: the pino logger pino-http makes from the app's nestjs-pino parameters (its serializers). */
  log: PinoLogger;
  metrics?: Metrics;
}

/**
 * Makes the request this path's once its key is known: the principal (first: the log line's bindings are made once,
 * with it, as Express's are when it answers), the client address as Express's req.ip has it, the request-log line
 * and the metrics series of `route`, as for a routed request.
 */
export function takeRequest(
  deps: FrontDeps,
  req: AuthedRequest,
  res: ServerResponse,
  principal: KeyPrincipal,
  route: string,
): void {
  req.principal = principal;
  Object.defineProperty(req, 'ip', { value: proxyAddr(req, deps.trustProxy), enumerable: true });
  logAnswer(deps.log, req, res);
  if (deps.metrics) {
    observeAnswer(deps.metrics, req.method, res, () => route);
  }
}

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
