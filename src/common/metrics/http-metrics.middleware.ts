import { Injectable, type NestMiddleware } from '@nestjs/common';
import type { NextFunction, Request, Response } from 'express';
import { ERROR_CODE_LOCAL } from '../logging/logger-options';
import { Metrics } from './metrics.service';

const UPLOAD_ROUTE = '/api/v1/upload';

/**
 * Counts every answer once it is sent: by route pattern (never the raw path, so the label set stays small), and for
 * POST /api/v1/upload by outcome (`ok` or the envelope code the exception filter put in res.locals). Guards'
 * refusals (401, 429) are answers too, which an interceptor would not see.
 */
@Injectable()
export class HttpMetricsMiddleware implements NestMiddleware {
  constructor(private readonly metrics: Metrics) {}

  use(req: Request, res: Response, next: NextFunction): void {
    const started = process.hrtime.bigint();
    let done = false;
    const record = (): void => {
      if (done) {
        return;
      }
      done = true;
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      if (route === '/metrics') {
        return;
      }
      const code = res.locals[ERROR_CODE_LOCAL] as string | undefined;
      const status = res.writableFinished ? String(res.statusCode) : 'aborted';
      const m = this.metrics;
      m.httpRequests.inc({ route, method: req.method, status });
      m.httpDuration.observe({ route, method: req.method }, seconds);
      if (code) {
        m.httpErrors.inc({ code });
        if (code === 'storage_failed') {
          m.storageErrors.inc({
            operation: req.method === 'GET' || req.method === 'HEAD' ? 'read' : 'write',
          });
        } else if (code === 'db_failed') {
          m.databaseErrors.inc({ source: 'request' });
        }
      }
      if (route === UPLOAD_ROUTE && req.method === 'POST') {
        const outcome = code ?? (res.statusCode < 400 ? 'ok' : String(res.statusCode));
        m.uploads.inc({ outcome });
        m.uploadDuration.observe({ outcome }, seconds);
      }
    };
    res.once('finish', record);
    res.once('close', record);
    next();
  }
}
