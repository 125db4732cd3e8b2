import { PARAMS_PROVIDER_TOKEN } from 'nestjs-pino';
import { __resetOutOfContextForTests } from 'nestjs-pino/PinoLogger';
import { Writable } from 'node:stream';
import { loggerOptions } from '../../src/common/logging/logger-options';
import type { AppConfig } from '../../src/config/app-config';

/**
 * The app's real request logger (LOG_LEVEL=info, JSON lines) writing into `lines` instead of stdout: pass `env` and
 * `overrides` to createTestApp.
 */
export function capturedLogLines(): {
  lines: Record<string, any>[];
  /** The same lines as written. */
  raw: string[];
  env: Record<string, string>;
  overrides: { provide: unknown; useValue: unknown }[];
} {
  const lines: Record<string, any>[] = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line);
        lines.push(JSON.parse(line) as Record<string, any>);
      }
      done();
    },
  });
  const { pinoHttp } = loggerOptions({ logLevel: 'info', logFormat: 'json' } as AppConfig);
  return {
    lines,
    raw,
    env: { LOG_LEVEL: 'info' },
    overrides: [{ provide: PARAMS_PROVIDER_TOKEN, useValue: { pinoHttp: [pinoHttp, sink] } }],
  };
}

/**
 * nestjs-pino writes lines logged outside a request (a Logger's warn from a timer, say) to the logger of the first
 * app made in the process, for good: call this before createTestApp so the next app's capture gets them.
 */
export function logOutsideRequestsToNextApp(): void {
  __resetOutOfContextForTests();
}
