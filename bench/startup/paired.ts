/**
 * Two builds of the service started side by side, in alternated rounds: how a change moves a warm start, spawn → the
 * first 200 of `/healthz`, when `npm run bench`'s start-up rows move more between runs than the change is worth.
 *
 * The baseline is another built checkout (`git worktree add /tmp/base <commit>`, `node_modules` linked in,
 * `npm run build`), or a copy of this `dist` with something taken out (its bundle, say: the loader then runs the
 * modules); this checkout's `dist` is the other side. Each round starts and stops each build once by default and once
 * with `WEB_CONCURRENCY=1`, the order alternating between rounds, all on one deployment; round 0 (migrations, the
 * code cache, the file cache) is not counted. Prints each side's median, every sample, and the ratio.
 *
 *   BENCH_BASELINE_DIR=/tmp/base npx ts-node --transpile-only bench/startup/paired.ts [rounds]
 */
import { median } from '../lib/report';
import { createDeployment, startService } from '../lib/service-process';
import { join } from 'node:path';

async function main(): Promise<void> {
  const baseline = process.env.BENCH_BASELINE_DIR;
  if (!baseline) {
    throw new Error('BENCH_BASELINE_DIR: a built checkout to compare this one with');
  }
  const ours = join(__dirname, '..', '..');
  const rounds = Number(process.argv[2] ?? 7);
  const settings: [string, Record<string, string>][] = [
    ['default', {}],
    ['WEB_CONCURRENCY=1', { WEB_CONCURRENCY: '1' }],
  ];
  const deployment = await createDeployment();
  const samples = new Map<string, number[]>();
  try {
    for (let round = 0; round <= rounds; round++) {
      const order = round % 2 === 0 ? [ours, baseline] : [baseline, ours];
      for (const [label, env] of settings) {
        for (const appDir of order) {
          const service = await startService({ ...deployment.env, ...env }, { appDir });
          await service.stop();
          if (round > 0) {
            const key = `${label} ${appDir === ours ? 'this' : 'baseline'}`;
            samples.set(key, [...(samples.get(key) ?? []), service.healthzMs]);
          }
        }
      }
    }
  } finally {
    await deployment.remove();
  }
  for (const [label] of settings) {
    const mine = samples.get(`${label} this`) ?? [];
    const base = samples.get(`${label} baseline`) ?? [];
    const show = (xs: number[]): string => xs.map((x) => Math.round(x)).join(' ');
    console.log(
      `${label}: this ${Math.round(median(mine))} ms (${show(mine)}), baseline ${Math.round(median(base))} ms ` +
        `(${show(base)}), ratio ${(median(mine) / median(base)).toFixed(2)}×`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
