import type { IncomingMessage, Server, ServerResponse } from 'node:http';

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
/** Answers the request and returns true, or returns false having touched nothing. */
export type FrontHandler = (req: IncomingMessage, res: ServerResponse) => boolean;

/**
 * Puts `make(next)` in front of the server's one request handler (Express, or what an earlier call put in front of
 * it): each request goes to the front handler first, and to `next` when it declines. A server with other than one
 * handler is left as it is.
 */
export function installInFront(server: Server, make: (next: RequestHandler) => FrontHandler): void {
  const handlers = server.listeners('request') as RequestHandler[];
  if (handlers.length !== 1) {
    return;
  }
  const [next] = handlers;
  server.removeListener('request', next);
  const front = make(next);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!front(req, res)) {
      next(req, res);
    }
  });
}
