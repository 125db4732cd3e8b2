import { Logger } from '@nestjs/common';
import { storage as requestLogStore, Store } from 'nestjs-pino/storage';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { BearerAuthenticator, RequestCounter } from '../../common/auth/authenticators';
import type { AuthedRequest } from '../../common/auth/current-principal.decorator';
import type { KeyPrincipal } from '../../common/auth/principal';
import { writeErrorAnswer } from '../../common/errors/all-exceptions.filter';
import { installInFront, type RequestHandler } from '../../common/http/in-front';
import type { RateLimiter } from '../../common/rate-limit/rate-limiter';
import { answerJson, BEARER_KEY, type FrontDeps, takeRequest } from './front-answer';
import { isMultipart } from './multipart/multipart-reader';
import type { UploadPipelineService, UploadRequest } from './upload-pipeline.service';

const UPLOAD = '/api/v1/upload';

export interface UploadFastPathDeps extends FrontDeps {
  keys: BearerAuthenticator;
  counter: RequestCounter;
  limiter: RateLimiter;
  pipeline: Pick<UploadPipelineService, 'handle'>;
}

/**
 * `POST /api/v1/upload` with an API key, in front of Express (issue 14, goal 2): what the route's guards, interceptor
 * and filter do, with the same services, and then the same pipeline. An upload spends most of its time in its image
 * work, but its fixed cost is the event loop's CPU, and Express and Nest were a good part of it (the router, the
 * middleware chain, passport, two guards, the interceptors, pino-http's per-request child loggers: about 10 ms of the
 * event loop's CPU per 16×16 upload in a profile, none of it above 1.4 ms, with the request's own work).
 *
 * It takes a request only when nothing about it needs Express: a POST to exactly `/api/v1/upload` with a
 * `multipart/form-data` body and an `Authorization: Bearer fxf_…` header. The body is not touched until the key is
 * known: any failure of the key lookup (an unknown, revoked or banned key, the database down) and a key without the
 * `upload` scope go to Express, which reads the same untouched request and answers it as it does every request.
 * Once the key is known the request is this path's: counted and limited as the guards do (the request count and the
 * `uploads` limit side by side, a refusal answered once counted, with the X-RateLimit-* headers), then the
 * pipeline; every answer after that, a failure included, is written here with the exception filter's own writer, and
 * logged and measured as a routed one (the same request-log line, the same metrics).
 */
export function installUploadFastPath(server: Server, deps: UploadFastPathDeps): void {
  installInFront(server, (next) => uploadFastPath(deps, next));
}

/** Returns a handler that takes the request and returns true, or returns false having touched nothing. */
export function uploadFastPath(
  deps: UploadFastPathDeps,
  fallback: RequestHandler,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const logger = new Logger('Errors');

  const serve = async (
    req: AuthedRequest & UploadRequest,
    res: ServerResponse,
    token: string,
  ): Promise<void> => {
    let principal;
    try {
      principal = await deps.keys.authenticate(token);
    } catch {
      fallback(req, res); // 401, 403 banned, or the database down: Express answers
      return;
    }
    if (principal.kind !== 'key' || !principal.scopes.includes('upload')) {
      fallback(req, res); // the 403 of a key without the scope
      return;
    }

    // From here the request is this path's: logged, measured, counted and limited like a routed one.
    takeRequest(deps, req, res, principal, UPLOAD);
    (req as UploadRequest).res = res;
    // What the services log while the upload runs carries the request, as a routed request's lines do (nestjs-pino's
    // request store, with the child logger pino-http would bind): one child logger an upload, where a read has none.
    await requestLogStore.run(new Store(deps.log.child({ req })), () => serveTaken(principal, req, res));
  };

  /** The request once it is this path's (serve), in the request-log store. */
  const serveTaken = async (
    principal: KeyPrincipal,
    req: AuthedRequest & UploadRequest,
    res: ServerResponse,
  ): Promise<void> => {
    // As the AuthGuard and the RateLimitGuard: the count and the limit side by side, a refusal once counted. The
    // pipeline takes their answer as its first check: a small body is read meanwhile (its early receive).
    const counted = deps.counter.count(principal);
    const admitted = Promise.all([
      deps.limiter.admit('uploads', principal).catch(async (err: unknown) => {
        await counted;
        throw err;
      }),
      counted,
    ]).then(([limits]) => {
      for (const [name, value] of Object.entries(limits)) {
        res.setHeader(name, value);
      }
    });
    try {
      const answer = await deps.pipeline.handle(principal, req, admitted);
      // The route's @NoStore(): the answer carries the upload's delete link.
      res.setHeader('Cache-Control', 'no-store');
      answerJson(req, res, answer, deps.etag);
    } catch (err) {
      writeErrorAnswer(res, err, { path: UPLOAD, bodyIsJson: false, logger });
    }
  };

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== UPLOAD || !isMultipart(req)) {
      return false;
    }
    const token = BEARER_KEY.exec(req.headers.authorization ?? '')?.[1];
    if (!token) {
      return false;
    }
    serve(req as AuthedRequest & UploadRequest, res, token).catch(() => {
      // Writing the answer failed (the client went away): nothing more can be said on this socket.
      res.destroy();
    });
    return true;
  };
}
