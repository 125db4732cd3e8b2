/**
 * Issue 14, goal 3: reads against their own SQL, side by side in one run.
 *
 * The service runs as a real process (bench/lib/service.ts). `BENCH_READS_ROWS` uploads (default 300,000; the issue
 * measured 1,000,000) of 1,000 other users plus `BENCH_READS_OWN` (2,000) of the bench user are seeded with one
 * INSERT … SELECT generate_series. Each route is called sequentially on one keep-alive connection and its p50
 * compared with the p50 of the same SQL, same parameters, run alone through a pg client — the route's data query (the
 * guard's key lookup, rate limit and request counter are part of what the route costs, not of its SQL); each is called
 * `BENCH_READS_WARMUP` times (5,000) untimed first. The SQL is sent as a client sends it by default (unnamed: parsed
 * and planned on every call, as pgbench's default and the issue's own figures); the service prepares its statements
 * (leanQuery), so an informational row beside each compares the route with the same SQL prepared as well. A third
 * row compares it with its floor on this machine: a bare `node:http` server (floor-server.ts, a process of its own)
 * answering the same path with the same SQL, prepared, and one Redis call side by side — what any Node service pays
 * for the read before its own work (the service's statement also looks the key up). Then `/me` req/s against
 * `/healthz` req/s (wrk, 8 connections).
 *
 *   npm run bench -- 3 reads
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Agent, request } from 'node:http';
import { dirname, join } from 'node:path';
import { Client } from 'pg';
import ts from 'typescript';
import { type BenchRow, type BenchSuite, median, row } from '../lib/report';
import { startService, wrk } from '../lib/service';
import { freePort } from '../../test/setup/private-servers';

const ROWS = Number(process.env.BENCH_READS_ROWS ?? 300_000);
const OWN = Number(process.env.BENCH_READS_OWN ?? 2000);
const CALLS = Number(process.env.BENCH_READS_CALLS ?? 300);
/**
 * Calls of each route, of its SQL (both ways) and of its floor before their first timed run. V8 compiles a route's
 * code to machine code over its first few thousand calls: a fresh service's lookup answered in 1.2 ms p50 over its
 * first 500 calls, 0.95 ms after 1,000, 0.6 ms after 3,000 and 0.42 ms from about 5,000 on, its CPU a call going from
 * 1.4 to 0.36 ms (with at most a few page faults a call, and the same curve after 20 s idle: the calls, not the
 * machine). The rows are about a service, and clients, that have been running.
 */
const WARMUP = Number(process.env.BENCH_READS_WARMUP ?? 5000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);

function percentile50(ms: number[]): number {
  return median(ms);
}

async function timeCalls(calls: number, fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < 30; i++) {
    await fn();
  }
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return percentile50(times);
}

/**
 * floor-server.ts as plain JavaScript in a temp dir, for plain `node`: under ts-node the floor would carry
 * node:domain's slower emit (ts-node loads node:repl), which the service, run from dist, does not.
 */
function floorScript(): string {
  const source = readFileSync(join(__dirname, 'floor-server.ts'), 'utf8');
  const { outputText } = ts.transpileModule(source, {
    compilerOptions: {
      module: ts.ModuleKind.CommonJS,
      target: ts.ScriptTarget.ES2022,
      esModuleInterop: true,
    },
  });
  const file = join(mkdtempSync(join(tmpdir(), 'fxf-bench-floor-')), 'floor-server.js');
  writeFileSync(file, outputText);
  return file;
}

export const suite: BenchSuite = {
  name: 'reads',
  async run({ runs }): Promise<BenchRow[]> {
    const service = await startService(await freePort());
    const pg = new Client({ connectionString: service.databaseUrl });
    await pg.connect();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const floorAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    // The floor server and its script, once started (the finally below ends and removes them).
    let floorServer: ChildProcess | undefined;
    let floorFile: string | undefined;
    try {
      const seeded = Date.now();
      // BENCH_READS_ROWS uploads over 1,000 other users, plus OWN for the bench user (a busy account: /me sums them).
      await pg.query(
        `insert into users (id, email, password_hash, role, created_at)
         select gen_random_uuid(), 'seed-' || g || '@example.com', 'x', 'user', now() from generate_series(1, 1000) g`,
      );
      await pg.query(
        `insert into uploads (id, owner_id, filename, mime, size, width, height, sha256, stored_sha256, tags,
                              delete_token_hash, created_at)
         select gen_random_uuid(), case when g <= $3 then $1::uuid else o.ids[1 + g % 1000] end,
                'FIXITFY-' || lpad(to_hex(g), 12, '0') || '.png', 'image/png', 1000 + g % 5000,
                640, 480, md5(g::text) || md5('s' || g), md5('t' || g) || md5('u' || g),
                case when g % 10 = 0 then array['cats'] else '{}' end, md5('d' || g) || md5('e' || g),
                now() - make_interval(secs => g)
           from generate_series(1, $2::int + $3::int) as g,
                (select array_agg(id) as ids from users where email like 'seed-%') as o`,
        [service.userId, ROWS, OWN],
      );
      await pg.query('analyze uploads');
      const seedSeconds = (Date.now() - seeded) / 1000;
      const filename = `FIXITFY-${(OWN >> 1).toString(16).padStart(12, '0')}.png`;

      const getFrom = (base: string, via: Agent, path: string): Promise<void> =>
        new Promise((resolve, reject) => {
          const req = request(
            `${base}${path}`,
            { agent: via, headers: { Authorization: `Bearer ${service.token}` } },
            (res) => {
              res.resume();
              res.on('end', () =>
                res.statusCode === 200 ? resolve() : reject(new Error(`${path}: ${res.statusCode}`)),
              );
            },
          );
          req.on('error', reject);
          req.end();
        });
      const get = (path: string): Promise<void> => getFrom(service.url, agent, path);
      let prepared = 0;
      const sql = (text: string, params: unknown[]) =>
        Object.assign(
          (named: boolean): (() => Promise<void>) => {
            const name = named ? `bench_${++prepared}` : undefined;
            return async (): Promise<void> => {
              await pg.query({ name, text, values: params });
            };
          },
          { text, values: params },
        );

      const routes = [
        {
          label: 'GET /api/v1/uploads?limit=50',
          path: '/api/v1/uploads?limit=50',
          sql: [
            sql(
              `select id, filename, mime, size, width, height, tags, sha256, created_at from uploads
                where owner_id = $1 and deleted_at is null order by created_at desc, id desc limit $2`,
              [service.userId, 51],
            ),
          ],
        },
        {
          label: 'GET /api/v1/uploads/:filename',
          path: `/api/v1/uploads/${filename}`,
          sql: [
            sql(
              `select id, filename, mime, size, width, height, tags, sha256, created_at from uploads
                where filename = $1 and owner_id = $2 and deleted_at is null`,
              [filename, service.userId],
            ),
          ],
        },
        {
          label: 'GET /api/v1/me',
          path: '/api/v1/me',
          // Its one data statement: usage and quota together (the calling key comes with the guard's lookup).
          sql: [
            sql(
              `select s.n, s.bytes, u.quota_bytes, u.quota_files from users u
                cross join lateral (select count(*) as n, coalesce(sum(size), 0) as bytes from uploads
                                     where owner_id = u.id and deleted_at is null
                                       and (expires_at is null or expires_at > now())) s
               where u.id = $1`,
              [service.userId],
            ),
          ],
        },
      ];
      // The floor: a bare node:http server doing each route's SQL and one Redis call (floor-server.ts).
      const floorPort = await freePort();
      floorFile = floorScript();
      const floor = fork(floorFile, [], {
        execArgv: [],
        env: {
          ...process.env,
          NODE_PATH: join(__dirname, '..', '..', 'node_modules'),
          FLOOR_PORT: String(floorPort),
          FLOOR_DATABASE_URL: service.databaseUrl,
          FLOOR_REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
          FLOOR_ROUTES: JSON.stringify(
            Object.fromEntries(routes.map((r) => [r.path, { text: r.sql[0].text, values: r.sql[0].values }])),
          ),
        },
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      floorServer = floor;
      await new Promise<void>((resolve, reject) => {
        floor.once('message', () => resolve());
        floor.once('exit', (code) => reject(new Error(`the floor server exited (${code})`)));
      });
      const floorUrl = `http://127.0.0.1:${floorPort}`;
      const rows: BenchRow[] = [];
      for (const route of routes) {
        const ours: number[] = [];
        const theirs: number[] = [];
        const theirsPrepared: number[] = [];
        const floor: number[] = [];
        const plain = route.sql.map((q) => q(false));
        const named = route.sql.map((q) => q(true));
        const each = (qs: (() => Promise<void>)[]) => async (): Promise<void> => {
          for (const q of qs) {
            await q();
          }
        };
        for (let i = 0; i < WARMUP; i++) {
          await each(plain)();
          await each(named)();
          await get(route.path);
          await getFrom(floorUrl, floorAgent, route.path);
        }
        for (let i = 0; i < runs; i++) {
          theirs.push(await timeCalls(CALLS, each(plain)));
          theirsPrepared.push(await timeCalls(CALLS, each(named)));
          ours.push(await timeCalls(CALLS, () => get(route.path)));
          floor.push(await timeCalls(CALLS, () => getFrom(floorUrl, floorAgent, route.path)));
        }
        rows.push(
          row({
            label: `${route.label} p50 (${(ROWS + OWN).toLocaleString('en')} rows, ${OWN.toLocaleString('en')} the caller's)`,
            value: median(ours),
            baseline: median(theirs),
            baselineLabel:
              route.sql.length > 1
                ? `its ${route.sql.length} SQL statements alone (pg)`
                : 'its SQL alone (pg)',
            unit: 'ms',
            goal: { direction: 'at-most', ratio: 5 },
            note: `${CALLS} sequential calls after ${WARMUP.toLocaleString('en')} untimed; seeded in ${seedSeconds.toFixed(0)} s; ${runs} runs`,
          }),
          row({
            label: `${route.label} p50, against its SQL prepared`,
            value: median(ours),
            baseline: median(theirsPrepared),
            baselineLabel: 'its SQL alone, prepared (pg)',
            unit: 'ms',
            note: 'informational: the service prepares its statements too',
          }),
          row({
            label: `${route.label} p50, against its floor`,
            value: median(ours),
            baseline: median(floor),
            baselineLabel: 'bare node:http server: its SQL (prepared) + one Redis call',
            unit: 'ms',
            note: `informational: the least a Node service pays for this read here (the floor's own ratio to its SQL: ${(median(floor) / median(theirs)).toFixed(2)}×)`,
          }),
        );
      }
      const me: number[] = [];
      const health: number[] = [];
      for (let i = 0; i < runs; i++) {
        health.push(wrk(`${service.url}/healthz`, { connections: 8, seconds: SECONDS }).rps);
        const m = wrk(`${service.url}/api/v1/me`, {
          connections: 8,
          seconds: SECONDS,
          headers: { Authorization: `Bearer ${service.token}` },
        });
        if (m.non2xx > 0) {
          throw new Error(`/me answered ${m.non2xx} errors`);
        }
        me.push(m.rps);
      }
      rows.push(
        row({
          label: 'GET /api/v1/me throughput',
          value: median(me),
          baseline: median(health),
          baselineLabel: 'GET /healthz',
          unit: 'req/s',
          goal: { direction: 'at-least', ratio: 0.5 },
          note: `wrk, 8 conns, ${SECONDS} s; ${runs} runs`,
        }),
      );
      return rows;
    } finally {
      agent.destroy();
      floorAgent.destroy();
      floorServer?.kill();
      if (floorFile) {
        rmSync(dirname(floorFile), { recursive: true, force: true });
      }
      await pg.end();
      await service.stop();
    }
  },
};
