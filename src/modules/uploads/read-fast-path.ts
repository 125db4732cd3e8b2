import { Logger, type ValidationPipe } from '@nestjs/common';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { parse as parseQuery } from 'node:querystring';
import type { RequestCounter } from '../../common/auth/authenticators';
import type { AuthedRequest } from '../../common/auth/current-principal.decorator';
import type { KeyPrincipal } from '../../common/auth/principal';
import { installInFront, type RequestHandler } from '../../common/http/in-front';
import { writeErrorAnswer } from '../../common/errors/all-exceptions.filter';
import type { RateLimiter } from '../../common/rate-limit/rate-limiter';
import { hashToken } from '../api-keys/api-key-token';
import type { ApiKeysService, KeyCompanion } from '../api-keys/api-keys.service';
import { ListUploadsQuery } from './dto/upload.dto';
import type { KeyHints } from './key-hints';
import type { UploadsService } from './uploads.service';
import { answerJson, BEARER_KEY, type FrontDeps, takeRequest } from './front-answer';

/** A filename Express would hand the route as it is (nothing to decode). */
const PLAIN_FILENAME = /^[A-Za-z0-9._-]{1,255}$/;
/** A listing query of plain names and values, which Express's query parser and node:querystring read alike. */
const PLAIN_QUERY = /^[A-Za-z0-9_.=&-]{0,512}$/;

/**
 * How many listing queries keep their validated form: a query string always validates to the same options, and a
 * client that polls asks the same one again (the ValidationPipe was a twelfth of a listing's CPU in a profile). A
 * pager's cursors are each new; the oldest query goes first.
 */
export const LIST_QUERIES_KEPT = 64;

const LIST = '/api/v1/uploads';
const ME = '/api/v1/me';

export interface ReadFastPathDeps extends FrontDeps {
  /** The key lookup, with the read's data statement in its round trip. */
  keys: Pick<ApiKeysService, 'authenticateWith'>;
  counter: RequestCounter;
  limiter: RateLimiter;
  uploads: UploadsService;
  /** Keys this instance has verified: their requests' work starts while their lookup runs. */
  hints: KeyHints;
  /** The app's ValidationPipe (createValidationPipe), for the listing's query. */
  validation: ValidationPipe;
}

/**
 * A read this path answers: its route (as Express names it, for the metrics), its data statement for the key's
 * owner (run in the key lookup's statement), and its body from that data and the principal the lookup gave.
 */
interface Read<T = unknown> {
  route: string;
  data: KeyCompanion<T>;
  answer: (p: KeyPrincipal, data: T, count: number | null) => unknown;
  /** The body shows the key's request count (the count's figure, this request included): the answer waits for it. */
  showsCount?: boolean;
}

/**
 * The management API's hot reads (issue 14, goal 3), in front of Express: `GET /api/v1/me`, `GET /api/v1/uploads`
 * and `GET /api/v1/uploads/:filename` called with an API key. Express and Nest cost more per request than the
 * request's own work (a CPU profile of the lookup under load: the router, guards, interceptors, passport and the
 * middleware chain, ~1.1 ms of 1.5–1.9 ms here); this path does what their guards and handler do, with the same
 * services: the key lookup (BearerAuthenticator), the scope check, the request count (RequestCounter) and the
 * management rate limit (RateLimiter), the same service call, and answers as Express would (the same headers, the
 * same weak ETag and 304, the same error envelope, the same request-log line and metrics).
 *
 * It takes a request only when nothing about it needs Express: a GET with no body, an `Authorization: Bearer fxf_…`
 * header, a path it reads exactly as the router would. Any failure of the key lookup (an unknown, revoked or banned
 * key, a missing scope, the database down) and any query the ValidationPipe refuses go to Express, which answers
 * them as it does every request. Once the key is known, the request is counted and limited here, and everything
 * after — a 429, a 404, a failure — is answered here, with the exception filter's own writer.
 *
 * The data statement runs inside the key lookup's statement (ApiKeysService.authenticateWith: a lateral join on the
 * key's owner), so a read is one round trip and one statement to PostgreSQL; Redis then counts and limits, side by
 * side. For a key this instance has verified before (KeyHints), the rate limit is asked while the lookup runs. The
 * lookup still decides the answer and its body. The count waits for it: it seeds a counter Redis lost with the
 * database's figure, which only the lookup has fresh, and a refused request must not count. The answer waits for the
 * count only when its body shows it (`/me`) or it refuses: a listing or a lookup is answered once the lookup and the
 * rate limit are, and its count is sent right after the answer, in the same turn of the event loop (neither its round
 * trip nor its write to Redis is in the answer's time). What the lookup cannot
 * undo is the rate-limit slot of a request started on a hint whose lookup then fails. Hints go on every instance at
 * once when their key is revoked or their owner banned, and when a lookup fails, so that is at most the requests in
 * flight at that moment (or the first after a revoke made in the database by hand).
 */
export function installReadFastPath(server: Server, deps: ReadFastPathDeps): void {
  installInFront(server, (next) => readFastPath(deps, next));
}

/** Returns a handler that takes the request and returns true, or returns false having touched nothing. */
export function readFastPath(
  deps: ReadFastPathDeps,
  fallback: RequestHandler,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const logger = new Logger('Errors');
  const { uploads, hints } = deps;
  const me: Read<Awaited<ReturnType<UploadsService['accountStats']>>> = {
    route: ME,
    data: uploads.accountStatsWithKey(),
    answer: (p, stats, count) => uploads.meOf(p, stats, count),
    showsCount: true,
  };

  /** A listing query's options (frozen: every request of that query shares them), or null for one the pipe refuses. */
  const validated = new Map<string, Readonly<ListUploadsQuery> | null>();
  const listOptions = async (query: string): Promise<Readonly<ListUploadsQuery> | null> => {
    let options = validated.get(query);
    if (options === undefined) {
      try {
        options = Object.freeze(
          (await deps.validation.transform(parseQuery(query), {
            type: 'query',
            metatype: ListUploadsQuery,
          })) as ListUploadsQuery,
        );
      } catch {
        options = null;
      }
      if (validated.size >= LIST_QUERIES_KEPT) {
        validated.delete(validated.keys().next().value as string);
      }
      validated.set(query, options);
    }
    return options;
  };

  /** The read for this path and query, null for one Express must answer (or one that is not a read of ours). */
  const readOf = async (path: string, query: string | undefined): Promise<Read | null> => {
    if (path === ME) {
      return query === undefined ? (me as Read) : null;
    }
    if (path === LIST) {
      if (query !== undefined && !PLAIN_QUERY.test(query)) {
        return null;
      }
      const options = await listOptions(query ?? '');
      if (!options) {
        return null; // a 400: the pipe in front of the controller answers it
      }
      return {
        route: LIST,
        data: uploads.listWithKey(options),
        answer: (_p, page) => ({ ok: true, ...(page as object) }),
      };
    }
    const filename = path.slice(LIST.length + 1);
    if (path.startsWith(`${LIST}/`) && query === undefined && PLAIN_FILENAME.test(filename)) {
      const read: Read<() => unknown> = {
        route: `${LIST}/:filename`,
        data: uploads.getWithKey(filename),
        answer: (_p, upload) => ({ ok: true, upload: upload() }),
      };
      return read as Read;
    }
    return null;
  };

  const serve = async (req: AuthedRequest, res: ServerResponse, token: string): Promise<void> => {
    const url = req.url;
    const q = url.indexOf('?');
    const read = await readOf(q === -1 ? url : url.slice(0, q), q === -1 ? undefined : url.slice(q + 1));
    if (!read) {
      fallback(req, res);
      return;
    }
    const hash = hashToken(token);
    const mark = hints.mark();
    const hint = hints.get(hash);
    // A key this instance has verified before: its rate limit is asked now, while the lookup runs (KeyHints).
    const early = hint?.scopes.includes('read') ? admit(hint) : null;
    let principal;
    let data;
    try {
      ({ principal, data } = await deps.keys.authenticateWith(token, read.data, hash));
    } catch {
      hints.drop(hash);
      fallback(req, res); // 401, 403 banned, or the database down: Express answers (and counts nothing more)
      return;
    }
    if (
      principal.kind !== 'key' ||
      !principal.scopes.includes('read') ||
      (hint && hint.keyId !== principal.keyId)
    ) {
      hints.drop(hash);
      fallback(req, res);
      return;
    }
    hints.remember(hash, principal, mark);

    // From here the request is this path's: logged, measured, counted and limited like a routed one.
    takeRequest(deps, req, res, principal, read.route);
    // A body that shows the count (/me) waits for it, so it is sent now; any other read sends it once answered.
    let counted = read.showsCount ? deps.counter.count(principal) : undefined;
    const admitted = early ?? admit(principal);
    try {
      const verdict = await admitted.then(
        (limits) => ({ limits }),
        (refusal: unknown) => ({ refusal }),
      );
      if ('refusal' in verdict) {
        // A refusal is answered once the request is counted, as the guard answers it.
        await (counted ??= deps.counter.count(principal));
        throw verdict.refusal;
      }
      const count = counted ? await counted : null;
      const { limits } = verdict;
      for (const [name, value] of Object.entries(limits)) {
        res.setHeader(name, value);
      }
      answerJson(req, res, read.answer(principal, data, count), deps.etag);
    } catch (err) {
      writeErrorAnswer(res, err, { path: url.slice(0, q === -1 ? undefined : q), bodyIsJson: false, logger });
    } finally {
      // A listing or a lookup: counted right after its answer went to the socket, in the same turn of the event loop,
      // so the count's command is on the Redis connection before any the client's next request can cause there, and
      // the next read of the figure includes this request. (Once after Redis lost its scripts, the count is sent
      // again as source on NOSCRIPT, and a /me right behind it may show one request fewer; the total stays exact.)
      // count() never rejects: a Redis failure is logged there, and the rate limiter refuses work while it lasts.
      if (!counted) {
        void deps.counter.count(principal);
      }
    }
  };

  /** Asks the rate limit; its refusal is answered by the caller once the request is counted. */
  const admit = (p: KeyPrincipal): Promise<Record<string, string>> => {
    const admitted = deps.limiter.admit('management', p);
    admitted.catch(() => undefined);
    return admitted;
  };

  return (req, res) => {
    if (
      req.method !== 'GET' ||
      !req.url?.startsWith('/api/v1/') ||
      req.headers['content-length'] !== undefined ||
      req.headers['transfer-encoding'] !== undefined
    ) {
      return false;
    }
    const token = BEARER_KEY.exec(req.headers.authorization ?? '')?.[1];
    if (!token) {
      return false;
    }
    serve(req as AuthedRequest, res, token).catch(() => {
      // Writing the answer failed (the client went away): nothing more can be said on this socket.
      res.destroy();
    });
    return true;
  };
}
