/**
 * `npm run bench [-- runs] [suite ...]`: every suite under bench/<name>/rows.ts, one after another, then one table.
 * With suite names, only those run (e.g. `npm run bench -- 5 direct-links uploads`).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchRow, type BenchSuite, renderTable } from './lib/report';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const runs = args.length > 0 && /^\d+$/.test(args[0]) ? Number(args.shift()) : 5;
  const only = new Set(args);
  const folders = readdirSync(__dirname, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(__dirname, d.name, 'rows.ts')))
    .map((d) => d.name)
    .filter((name) => only.size === 0 || only.has(name))
    .sort();
  if (folders.length === 0) {
    throw new Error(`no bench suite matches ${[...only].join(', ')}`);
  }
  const sections: Array<{ name: string; rows: BenchRow[] }> = [];
  for (const folder of folders) {
    const { suite } = (await import(join(__dirname, folder, 'rows.ts'))) as { suite: BenchSuite };
    process.stderr.write(`bench: ${suite.name} (${runs} runs)…\n`);
    sections.push({ name: suite.name, rows: await suite.run({ runs }) });
  }
  process.stdout.write(`${renderTable(sections)}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
