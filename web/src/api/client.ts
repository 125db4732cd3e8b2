import createClient, { type Middleware } from 'openapi-fetch';
import type { components, paths } from './schema';
import { notifySignedOut } from './signed-out';

export type Schemas = components['schemas'];
export type ErrorCode = Schemas['ErrorResponse']['code'];

/**
 * The CSRF token of the current session (API.md Part 2), in memory only: never localStorage or sessionStorage,
 * so a script that can read storage still cannot forge a request. Set by the session provider.
 */
let csrfToken: string | null = null;

export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

export function currentCsrfToken(): string | null {
  return csrfToken;
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const csrfHeader: Middleware = {
  onRequest({ request }) {
    if (csrfToken && UNSAFE_METHODS.has(request.method.toUpperCase())) {
      request.headers.set('X-CSRF-Token', csrfToken);
    }
    return request;
  },
};

/** The one way the website talks to the API: typed by the server's own OpenAPI document. */
export const api = createClient<paths>({ baseUrl: '', credentials: 'same-origin' });
api.use(csrfHeader);

/** An API answer that was not ok, as one typed error: the envelope's code and sentence, and Retry-After. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode | 'network',
    message: string,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function isEnvelope(body: unknown): body is { code: ErrorCode; error: string } {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as { code?: unknown }).code === 'string' &&
    typeof (body as { error?: unknown }).error === 'string'
  );
}

/**
 * Builds the ApiError for a failed response from its (already parsed) body and headers. Every failed answer passes
 * here (the client, the upload XHR, the raw fetches), so a 403 `banned` ends the session on this page at once: the
 * person lands on sign-in with the reason instead of a page whose every action fails.
 */
export function toApiError(status: number, headers: Headers, body: unknown): ApiError {
  const retry = Number(headers.get('Retry-After'));
  const retryAfter = Number.isFinite(retry) && retry > 0 ? Math.ceil(retry) : null;
  if (isEnvelope(body)) {
    const err = new ApiError(status, body.code, body.error, retryAfter);
    if (err.code === 'banned') {
      notifySignedOut(err);
    }
    return err;
  }
  return new ApiError(
    status,
    status >= 500 ? 'internal' : 'bad_request',
    `The server answered ${status}.`,
    retryAfter,
  );
}

interface ClientResult<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** Awaits an openapi-fetch call and returns its data, or throws one ApiError (network faults included). */
export async function call<T>(request: Promise<ClientResult<T>>): Promise<T> {
  let result: ClientResult<T>;
  try {
    result = await request;
  } catch {
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  const { response } = result;
  if (!response.ok || result.data === undefined) {
    throw toApiError(response.status, response.headers, result.error);
  }
  return result.data;
}
