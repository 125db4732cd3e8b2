import { Injectable } from '@nestjs/common';
import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { ResolvedAddress } from './host-resolver';
import { bareHostname } from './ssrf-guard';

/** How much of a response body is read (for the error excerpt); the rest is never downloaded. */
export const MAX_RESPONSE_BYTES = 4096;
const EXCERPT_CHARS = 200;

export interface SendResult {
  succeeded: boolean;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
}

export interface SendRequest {
  url: URL;
  /** The address the SSRF guard checked: the connection goes there and nowhere else. */
  target: ResolvedAddress;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** A lookup that answers with the checked address only, so the socket can't reach anything else (no rebinding). */
function pinnedLookup(target: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) {
      (callback as unknown as (err: null, addresses: { address: string; family: number }[]) => void)(null, [
        target,
      ]);
    } else {
      callback(null, target.address, target.family);
    }
  };
}

function excerpt(buf: Buffer): string {
  const text = buf
    .toString('utf8')
    .replace(/\p{Cc}+/gu, ' ')
    .trim();
  return text.length > EXCERPT_CHARS ? `${text.slice(0, EXCERPT_CHARS)}…` : text;
}

function httpFailure(status: number, chunks: Buffer[]): Omit<SendResult, 'durationMs'> {
  const text = excerpt(Buffer.concat(chunks));
  const redirect = status >= 300 && status < 400 ? ' (redirects are not followed)' : '';
  return {
    succeeded: false,
    statusCode: status,
    error: `HTTP ${status}${redirect}${text ? `: ${text}` : ''}`,
  };
}

/**
 * One signed POST. Any 2xx is success; anything else, a connection error or no complete answer within the timeout
 * is a failure with a reason. Redirects are not followed (a 3xx is a failure), no proxy or keep-alive agent is
 * used, and at most MAX_RESPONSE_BYTES of the answer are read.
 */
@Injectable()
export class WebhookSender {
  send(req: SendRequest): Promise<SendResult> {
    const started = performance.now();
    const client = req.url.protocol === 'https:' ? https : http;
    const body = Buffer.from(req.body, 'utf8');
    return new Promise<SendResult>((resolve) => {
      let settled = false;
      let request: http.ClientRequest | undefined;
      // Set once a non-2xx status line arrived: a body that stalls after it doesn't make the answer a timeout.
      let failed: { status: number; chunks: Buffer[] } | null = null;
      const finish = (result: Omit<SendResult, 'durationMs'>): void => {
        if (settled) {
          return;
        }
        settled = true;
        clearTimeout(timer);
        request?.destroy();
        resolve({ ...result, durationMs: Math.round(performance.now() - started) });
      };
      const timer = setTimeout(() => {
        finish(
          failed
            ? httpFailure(failed.status, failed.chunks)
            : {
                succeeded: false,
                statusCode: null,
                error: `Timed out after ${req.timeoutMs} ms without an answer.`,
              },
        );
      }, req.timeoutMs);
      try {
        request = client.request({
          protocol: req.url.protocol,
          hostname: bareHostname(req.url),
          port: req.url.port || undefined,
          path: `${req.url.pathname}${req.url.search}`,
          method: 'POST',
          headers: { ...req.headers, 'Content-Length': String(body.length), Connection: 'close' },
          auth: req.url.username
            ? `${decodeURIComponent(req.url.username)}:${decodeURIComponent(req.url.password)}`
            : undefined,
          agent: false,
          lookup: pinnedLookup(req.target),
        });
      } catch (err) {
        // Node refuses some URLs or headers synchronously (e.g. characters it won't put on the wire).
        finish({ succeeded: false, statusCode: null, error: `Request not sent: ${(err as Error).message}` });
        return;
      }
      request.on('error', (err: NodeJS.ErrnoException) => {
        finish({
          succeeded: false,
          statusCode: null,
          error: `Connection failed: ${err.code ?? err.message}.`,
        });
      });
      request.on('response', (res) => {
        res.on('error', () => undefined);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          // Any 2xx is success; the body is not needed.
          finish({ succeeded: true, statusCode: status, error: null });
          return;
        }
        const state = { status, chunks: [] as Buffer[] };
        failed = state;
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          state.chunks.push(chunk.subarray(0, Math.max(0, MAX_RESPONSE_BYTES - size)));
          size += chunk.length;
          if (size >= MAX_RESPONSE_BYTES) {
            finish(httpFailure(status, state.chunks));
          }
        });
        res.on('end', () => finish(httpFailure(status, state.chunks)));
        res.on('close', () => finish(httpFailure(status, state.chunks)));
      });
      request.end(body);
    });
  }
}
