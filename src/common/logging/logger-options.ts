import type { LoggerService } from '@nestjs/common';
import type { Response } from 'express';
import type { Params } from 'nestjs-pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppConfig } from '../../config/app-config';
import type { AuthedRequest } from '../auth/current-principal.decorator';
import { requestId } from '../http/request-id';

/** Where the exceptions filter leaves the code of an error answer, for the request's log line. */
export const ERROR_CODE_LOCAL = 'errorCode';

/** A delete link's path carries its secret token: the log keeps the route, never the token. */
export function loggableUrl(url: string): string {
  return url.replace(/^(\/api\/delete\/)[^/?#]+/, '$1[redacted]');
}

/**
 * What each request line carries: who called (user id and key prefix, once the auth guard has run), the error code of
 * an error answer, and a short request/response — no headers (credentials) and no `params` (Nest's wildcard middleware
 * route leaves a meaningless `path` array there).
 */
export function requestLogProps(req: IncomingMessage, res: ServerResponse): Record<string, unknown> {
  const props: Record<string, unknown> = {};
  const principal = (req as AuthedRequest).principal;
  if (principal) {
    props.principal = {
      user_id: principal.userId,
      via: principal.kind,
      ...(principal.kind === 'session' ? {} : { key_prefix: principal.keyPrefix }),
    };
  }
  const code = (res as Response).locals?.[ERROR_CODE_LOCAL] as unknown;
  if (typeof code === 'string') {
    props.code = code;
  }
  return props;
}

/** nestjs-pino's options for one config: JSON lines, or pino-pretty with LOG_FORMAT=pretty. */
export function loggerOptions(config: AppConfig): Params {
  return {
    pinoHttp: {
      level: config.logLevel,
      genReqId: requestId,
      customProps: requestLogProps,
      autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' },
      serializers: {
        req: (req: { id: unknown; method: string; url: string; raw?: AuthedRequest }) => ({
          id: req.id,
          method: req.method,
          url: loggableUrl(req.url),
          ip: req.raw?.ip ?? req.raw?.socket?.remoteAddress,
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      ...(config.logFormat === 'pretty'
        ? {
            transport: {
              target: 'pino-pretty',
              options: { singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' },
            },
          }
        : {}),
    },
  };
}

/** Nest's start-up chatter (one line per route and per module) goes to debug; everything else passes through. */
const CHATTY_CONTEXTS = new Set(['RoutesResolver', 'RouterExplorer', 'InstanceLoader']);

export class QuietStartupLogger implements LoggerService {
  constructor(private readonly inner: LoggerService) {}

  log(message: unknown, ...rest: unknown[]): void {
    const context = rest[rest.length - 1];
    if (typeof context === 'string' && CHATTY_CONTEXTS.has(context)) {
      this.inner.debug?.(message, ...rest);
      return;
    }
    this.inner.log(message, ...rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.inner.error(message, ...rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.inner.warn(message, ...rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.inner.debug?.(message, ...rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.inner.verbose?.(message, ...rest);
  }
  fatal(message: unknown, ...rest: unknown[]): void {
    (this.inner.fatal ?? this.inner.error).call(this.inner, message, ...rest);
  }
}
