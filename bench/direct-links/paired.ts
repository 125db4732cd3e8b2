/**
 * Two builds of the service side by side on the small requests whose CPU a change moves by a few per cent: a direct
 * link's 304 (an original and a warm variant), the lookup `GET /api/v1/uploads/:filename` and `/healthz` (through
 * Express). `npm run bench`'s rows move more between runs than such a change is worth.
 *
 * The baseline is another checkout, built (`git worktree add /tmp/base <commit>`, `node_modules` linked in, `npm run
 * build` there); this checkout's `dist` is the other side. Both services run at once, each as `npm start` runs it with
 * one HTTP process; each round runs wrk (2 s) on every request against each service in turn, in an order that
 * alternates between rounds. Prints, per request, both medians of req/s and of the service's CPU per request (from
 * /proc/<pid>/stat over the wrk run) and their ratios (this build over the baseline). The two services and wrk share
 * the two cores: take a dozen rounds or more.
 *
 *   BENCH_BASELINE_DIR=/tmp/base npx ts-node --transpile-only bench/direct-links/paired.ts [rounds]
 */
import { median } from '../lib/report';
import { cpuMs, type Service, startService, wrk } from '../lib/service';
import { freePort } from '../../test/setup/private-servers';
import { REPO_DIR } from '../lib/app';
import { image200k, uploadOne } from './rows';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);

/** A service with one upload, its original and a variant fetched once (so both are warm): a wrk run per request. */
async function prepare(
  appDir: string,
): Promise<{ service: Service; loads: Record<string, () => ReturnType<typeof wrk>> }> {
  const service = await startService(await freePort(), {}, appDir);
  const filename = await uploadOne(service, await image200k());
  const variantPath = `/images/${filename}?w=640&format=webp`;
  const etags: string[] = [];
  for (const path of [`/images/${filename}`, variantPath]) {
    const res = await fetch(`${service.url}${path}`);
    await res.arrayBuffer();
    etags.push(res.headers.get('etag') ?? '');
  }
  // The variant is stored just after its first answer; its metadata is then this instance's.
  await new Promise((r) => setTimeout(r, 500));
  const auth = { Authorization: `Bearer ${service.token}` };
  return {
    service,
    loads: {
      'original 304': () =>
        wrk(`${service.url}/images/${filename}`, {
          headers: { 'If-None-Match': etags[0] },
          seconds: SECONDS,
        }),
      'variant 304': () =>
        wrk(`${service.url}${variantPath}`, { headers: { 'If-None-Match': etags[1] }, seconds: SECONDS }),
      lookup: () =>
        wrk(`${service.url}/api/v1/uploads/${filename}`, { connections: 8, headers: auth, seconds: SECONDS }),
      '/healthz': () => wrk(`${service.url}/healthz`, { connections: 8, seconds: SECONDS }),
    },
  };
}

async function main(): Promise<void> {
  const baselineDir = process.env.BENCH_BASELINE_DIR;
  if (!baselineDir) {
    throw new Error('Set BENCH_BASELINE_DIR to the built checkout to compare with.');
  }
  const rounds = Number(process.argv[2] ?? 12);
  const base = await prepare(baselineDir);
  const ours = await prepare(REPO_DIR);
  const sides = { base, ours };
  const seen: Record<string, Record<'base' | 'ours', { rps: number[]; cpuUs: number[] }>> = {};
  try {
    for (let round = 0; round < rounds; round++) {
      for (const what of Object.keys(ours.loads)) {
        const order: ('base' | 'ours')[] = round % 2 ? ['ours', 'base'] : ['base', 'ours'];
        for (const side of order) {
          const { service, loads } = sides[side];
          const before = cpuMs(service.pid);
          const run = loads[what]();
          const used = cpuMs(service.pid) - before;
          if (run.non2xx > 0 && !what.endsWith('304')) {
            throw new Error(`${what}: ${run.non2xx} error answers from the ${side} service`);
          }
          const into = (seen[what] ??= {
            base: { rps: [], cpuUs: [] },
            ours: { rps: [], cpuUs: [] },
          })[side];
          into.rps.push(run.rps);
          into.cpuUs.push((used / run.requests) * 1000);
        }
      }
    }
  } finally {
    await base.service.stop();
    await ours.service.stop();
  }
  for (const [what, { base: b, ours: o }] of Object.entries(seen)) {
    console.log(
      `${what}: req/s ${median(b.rps).toFixed(0)} → ${median(o.rps).toFixed(0)} ` +
        `(${(median(o.rps) / median(b.rps)).toFixed(3)}×), CPU a request ${median(b.cpuUs).toFixed(1)} → ` +
        `${median(o.cpuUs).toFixed(1)} µs (${(median(o.cpuUs) / median(b.cpuUs)).toFixed(3)}×); ${rounds} rounds`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
