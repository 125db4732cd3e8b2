import { randomUUID } from 'node:crypto';
import { type Server, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ERROR_STATUS, type ErrorCode } from '../errors/error-status';

export interface HttpServerTimeouts {
  /** Time to receive the request line and headers. */
  headersTimeoutMs: number;
  /** Time to receive a whole request, body included (a 20 MB upload on a slow link). */
  requestTimeoutMs: number;
}

/** Sentences for what Node's HTTP parser refuses before any route sees the request. */
function describe(err: NodeJS.ErrnoException): { code: ErrorCode; message: string } {
  switch (err.code ?? '') {
    case 'HPE_HEADER_OVERFLOW':
      return { code: 'header_too_large', message: 'The request headers or URL are too large.' };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { code: 'bad_request', message: 'The request was not received in time.' };
    case 'HPE_INVALID_CHUNK_SIZE':
      return { code: 'bad_request', message: 'The chunked request body is malformed.' };
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return {
        code: 'bad_request',
        message: 'The request framing is invalid (Content-Length / Transfer-Encoding).',
      };
    default:
      return { code: 'bad_request', message: 'The request is not valid HTTP.' };
  }
}

/** The contract's envelope as raw HTTP/1.1 bytes, for a socket that has no ServerResponse. */
export function rawEnvelope(code: ErrorCode, message: string): string {
  const status = ERROR_STATUS[code];
  const body = JSON.stringify({ ok: false, code, error: message });
  return [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    `X-Request-Id: ${randomUUID()}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}

/**
 * Timeouts suited to a 20 MB upload on a slow link, and the envelope for requests Node's parser rejects (bad chunk
 * size, Content-Length with Transfer-Encoding, two Content-Lengths, oversized headers or URL, a request not received
 * in time): Node would answer those with a bare status line and no body. Call before listen().
 */
export function configureHttpServer(server: Server, timeouts: HttpServerTimeouts): void {
  server.headersTimeout = timeouts.headersTimeoutMs;
  server.requestTimeout = timeouts.requestTimeoutMs;
  // Node checks the two timeouts above on this period (30 s by default), read when the server starts listening.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval = Math.min(
    30_000,
    Math.max(50, Math.floor(Math.min(timeouts.headersTimeoutMs, timeouts.requestTimeoutMs) / 4)),
  );
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // The same guard as Node's own handler: nothing can be written to a reset socket or after an answer started.
    const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const { code, message } = describe(err);
    socket.end(rawEnvelope(code, message));
  });
}
