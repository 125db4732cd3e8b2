import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import type { ServerResponse } from 'node:http';
import { ERROR_CODE_LOCAL } from '../logging/logger-options';
import { Metrics } from './metrics.service';

const UPLOAD_ROUTE = '/api/v1/upload';

/**
 * Counts one answer once it is sent (on `finish`, or `close` for one cut short): by route pattern (never the raw
 * path, so the label set stays small; `route` is read then, as Express sets it while routing), and for POST
 * /api/v1/upload by outcome (`ok` or the envelope code the exception filter put in res.locals).
 */
export function observeAnswer(
  metrics: Metrics,
  method: string,
  res: ServerResponse & { locals?: Record<string, unknown> },
  route: () => string,
): void {
  const started = process.hrtime.bigint();
  let done = false;
  const record = (): void => {
    if (done) {
      return;
    }
    done = true;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const path = route();
    if (path === '/metrics') {
      return;
    }
    const code = res.locals?.[ERROR_CODE_LOCAL] as string | undefined;
    const status = res.writableFinished ? String(res.statusCode) : 'aborted';
    metrics.httpRequests.inc({ route: path, method, status });
    metrics.httpDuration.observe({ route: path, method }, seconds);
    if (code) {
      metrics.httpErrors.inc({ code });
      if (code === 'storage_failed') {
        metrics.storageErrors.inc({ operation: method === 'GET' || method === 'HEAD' ? 'read' : 'write' });
      } else if (code === 'db_failed') {
        metrics.databaseErrors.inc({ source: 'request' });
      }
    }
    if (path === UPLOAD_ROUTE && method === 'POST') {
      const outcome = code ?? (res.statusCode < 400 ? 'ok' : String(res.statusCode));
      metrics.uploads.inc({ outcome });
      metrics.uploadDuration.observe({ outcome }, seconds);
    }
  };
  res.once('finish', record);
  res.once('close', record);
}

/** Counts every answer Express gives. Guards' refusals (401, 429) are answers too, which an interceptor would not see. */
@Injectable()
export class HttpMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: Metrics) {}

  use(req: Request, res: Response, next: NextFunction): void {
    observeAnswer(
      this.metrics,
      req.method,
      res,
      () => (req.route as { path?: string } | undefined)?.path ?? 'unmatched',
    );
    next();
  }
}
