/**
 * Two builds of the service side by side, each read alternating between them in rounds: how a change moves a read's
 * p50 when `npm run bench`'s reads rows move more between runs than the change is worth (their SQL-alone baseline
 * moves too).
 *
 * The baseline is another checkout, built (`git worktree add /tmp/base <commit>`, `node_modules` linked in,
 * `npx tsc -p tsconfig.build.json`); this checkout's `dist` is the other side. Both services run at once, each as
 * `npm start` runs it with one HTTP process (bench/lib/service.ts), each with `BENCH_READS_OWN` (2,000) uploads of its
 * bench user seeded as the reads suite seeds them. A round calls the route `calls` times on one kept-alive connection
 * to one service, then to the other (the order alternates between rounds); each round gives the ratio of the two
 * p50s, and the run prints every round's ratio and their median.
 *
 *   BENCH_BASELINE_DIR=/tmp/base npx ts-node --transpile-only bench/reads/paired.ts [list|lookup|me] [rounds] [calls]
 */
import { Agent, request } from 'node:http';
import { Client } from 'pg';
import { median } from '../lib/report';
import { type Service, startService } from '../lib/service';
import { freePort } from '../../test/setup/private-servers';

const OWN = Number(process.env.BENCH_READS_OWN ?? 2000);

/** The bench user's uploads, as the reads suite seeds its own (rows.ts). */
async function seed(service: Service): Promise<void> {
  const pg = new Client({ connectionString: service.databaseUrl });
  await pg.connect();
  try {
    await pg.query(
      `insert into uploads (id, owner_id, filename, mime, size, width, height, sha256, stored_sha256, tags,
                            delete_token_hash, created_at)
       select gen_random_uuid(), $1::uuid, 'FIXITFY-' || lpad(to_hex(g), 12, '0') || '.png', 'image/png',
              1000 + g % 5000, 640, 480, md5(g::text) || md5('s' || g), md5('t' || g) || md5('u' || g),
              case when g % 10 = 0 then array['cats'] else '{}' end, md5('d' || g) || md5('e' || g),
              now() - make_interval(secs => g)
         from generate_series(1, $2::int) as g`,
      [service.userId, OWN],
    );
    await pg.query('analyze uploads');
  } finally {
    await pg.end();
  }
}

/** The p50 of `calls` sequential GETs of `path` on one kept-alive connection (each must answer 200). */
async function p50(service: Service, path: string, calls: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const times: number[] = [];
    for (let i = 0; i < calls; i++) {
      times.push(
        await new Promise<number>((resolve, reject) => {
          const started = process.hrtime.bigint();
          const req = request(
            `${service.url}${path}`,
            { agent, headers: { Authorization: `Bearer ${service.token}` } },
            (res) => {
              res.resume();
              res.on('end', () =>
                res.statusCode === 200
                  ? resolve(Number(process.hrtime.bigint() - started) / 1e6)
                  : reject(new Error(`${path}: ${res.statusCode}`)),
              );
            },
          );
          req.on('error', reject);
          req.end();
        }),
      );
    }
    return median(times);
  } finally {
    agent.destroy();
  }
}

async function main(): Promise<void> {
  const baseline = process.env.BENCH_BASELINE_DIR;
  if (!baseline) {
    throw new Error('Set BENCH_BASELINE_DIR to the built checkout to compare with.');
  }
  const route = process.argv[2] ?? 'list';
  const rounds = Number(process.argv[3] ?? 10);
  const calls = Number(process.argv[4] ?? 300);
  const paths: Record<string, string> = {
    list: '/api/v1/uploads?limit=50',
    lookup: `/api/v1/uploads/FIXITFY-${(OWN >> 1).toString(16).padStart(12, '0')}.png`,
    me: '/api/v1/me',
  };
  const path = paths[route];
  if (!path) {
    throw new Error(`the route is list, lookup or me, not ${route}`);
  }
  const services: Service[] = [];
  try {
    services.push(await startService(await freePort(), {}, baseline));
    services.push(await startService(await freePort()));
    await Promise.all(services.map(seed));
    // Warm-up: JIT, connections, prepared statements, the key's hints.
    for (const service of services) {
      await p50(service, path, calls);
    }
    const ratios: number[] = [];
    const medians: number[][] = [[], []];
    for (let round = 0; round < rounds; round++) {
      const got = [0, 0];
      for (const side of round % 2 === 0 ? [0, 1] : [1, 0]) {
        got[side] = await p50(services[side], path, calls);
        medians[side].push(got[side]);
      }
      ratios.push(got[1] / got[0]);
    }
    console.log(
      `${route} (${path}): baseline p50 ${median(medians[0]).toFixed(3)} ms, this build ${median(medians[1]).toFixed(3)} ms; ` +
        `this build / baseline per round ${ratios.map((r) => r.toFixed(3)).join(' ')}, median ${median(ratios).toFixed(3)} ` +
        `(${rounds} rounds × ${calls} calls)`,
    );
  } finally {
    await Promise.all(services.map((service) => service.stop()));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
