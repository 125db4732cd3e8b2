/**
 * `npm run bench:floods -- [runs=3] [samples=100]`: the floods suite (bench/floods/rows.ts) alone, with its table.
 * The same rows come out of `npm run bench -- [runs] floods`.
 */
import { renderTable } from '../lib/report';
import { suite } from './rows';

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  if (process.argv[3]) {
    process.env.BENCH_FLOODS_SAMPLES = process.argv[3];
  }
  const rows = await suite.run({ runs });
  process.stdout.write(`${renderTable([{ name: suite.name, rows }])}\n`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
