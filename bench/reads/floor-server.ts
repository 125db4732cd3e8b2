/**
 * The reads suite's floor (informational rows): a bare `node:http` server in a process of its own that answers each
 * GET the way any Node service must at the least — its route's SQL (prepared, on one pg connection) and one Redis
 * call (an INCR, as the request counter) side by side, then the rows as JSON. No framework, no auth, no logging. The
 * parent sends the routes ({ path: { text, values } }) in FLOOR_ROUTES and waits for the 'ready' message.
 */
import { createServer } from 'node:http';
import Redis from 'ioredis';
import { Client } from 'pg';

interface FloorRoute {
  text: string;
  values: unknown[];
}

async function main(): Promise<void> {
  const routes = JSON.parse(process.env.FLOOR_ROUTES ?? '{}') as Record<string, FloorRoute>;
  const pg = new Client({ connectionString: process.env.FLOOR_DATABASE_URL });
  await pg.connect();
  const redis = new Redis(process.env.FLOOR_REDIS_URL ?? 'redis://127.0.0.1:6379');
  // Its own key, gone an hour after the run at the latest (INCR keeps the TTL): the parent ends this process by kill.
  const counter = `fxf-bench-floor:${process.pid}`;
  await redis.set(counter, 0, 'EX', 3600);
  const names = new Map(Object.keys(routes).map((path, i) => [path, `floor_${i}`]));
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (!route) {
      res.statusCode = 404;
      res.end();
      return;
    }
    Promise.all([
      pg.query({ name: names.get(req.url ?? ''), text: route.text, values: route.values }),
      redis.incr(counter),
    ]).then(
      ([result]) => {
        const body = JSON.stringify({ ok: true, rows: result.rows });
        res.setHeader('Content-Type', 'application/json; charset=utf-8');
        res.end(body);
      },
      () => {
        res.statusCode = 500;
        res.end();
      },
    );
  });
  server.listen(Number(process.env.FLOOR_PORT), '127.0.0.1', () => process.send?.('ready'));
}

void main();
