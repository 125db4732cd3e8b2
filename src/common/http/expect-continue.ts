import type { IncomingMessage, Server, ServerResponse } from 'node:http';

const DEFERRED = Symbol('100 Continue deferred');

type Deferring = IncomingMessage & { [DEFERRED]?: ServerResponse };

/**
 * `Expect: 100-continue` (curl sends it for bodies over 1 MB): Node answers 100 Continue at once unless told otherwise,
 * so a client sends its body before anything was checked, and an upload refused for its key, its size or its limits
 * had already started sending megabytes. Requests `defer` picks get their 100 Continue only when their body is first
 * read (continueIfAsked); a refusal before that is the final answer, and the client sends no body. Every other
 * request gets it at once, as before: body parsers run ahead of the checks there.
 */
export function deferContinue(server: Server, defer: (req: IncomingMessage) => boolean): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (defer(req)) {
      (req as Deferring)[DEFERRED] = res;
    } else {
      res.writeContinue();
    }
    server.emit('request', req, res);
  });
}

/** Before a deferring route reads its body: the 100 Continue its client may be waiting for. */
export function continueIfAsked(req: IncomingMessage): void {
  const res = (req as Deferring)[DEFERRED];
  if (res) {
    delete (req as Deferring)[DEFERRED];
    if (!res.headersSent) {
      res.writeContinue();
    }
  }
}
