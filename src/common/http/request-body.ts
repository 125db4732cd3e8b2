import cookieParser from 'cookie-parser';
import express, { type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { AppError } from '../errors/app-error';
import { refuseDeepJson } from './json-depth';

/** The one route whose body is not JSON: the upload, multipart, streamed by busboy (uploads/multipart). */
const MULTIPART_ROUTES = new Set(['/api/v1/upload']);

/** The largest JSON body read (KB); a larger one is 413 `too_large`. */
export const JSON_BODY_LIMIT_KB = 64;

export const NOT_JSON_MESSAGE = 'The request body must be JSON, sent with Content-Type: application/json.';

/** Whether the request carries body bytes (a `Content-Length: 0` POST carries none). */
function hasBody(req: Request): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * "JSON in" (API.md): a body on any route but the upload must be JSON. Before, a form (`x-www-form-urlencoded`) was
 * parsed as well — so a plain HTML form on another site could sign a visitor in to an account of its choosing
 * (login CSRF), and register — and a body of any other type was silently ignored (`-d '{"ttl_seconds":60}'` without
 * its Content-Type made a token that lived an hour).
 */
export function requireJsonBody(req: Request, _res: Response, next: NextFunction): void {
  if (!hasBody(req) || req.is('application/json') || MULTIPART_ROUTES.has(req.path)) {
    next();
    return;
  }
  next(new AppError('bad_request', NOT_JSON_MESSAGE));
}

/**
 * What reads a request's body and cookies, in order. Applied as the app's own middleware (AppModule), so it runs
 * after the request log and the metrics middleware: a body that cannot be read (bad JSON, too large, a
 * Content-Encoding that does not decompress) is answered with its request id, logged and counted like any other
 * error. JSON bodies are small; uploads are multipart and streamed by busboy, never through this parser.
 */
export function requestBodyMiddleware(): RequestHandler[] {
  return [
    requireJsonBody,
    express.json({ limit: `${JSON_BODY_LIMIT_KB}kb`, strict: true, verify: refuseDeepJson }),
    cookieParser(),
  ];
}
