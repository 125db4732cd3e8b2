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
  const failed: string[] = [];
  for (const folder of folders) {
    const { suite } = (await import(join(__dirname, folder, 'rows.ts'))) as { suite: BenchSuite };
    process.stderr.write(`bench: ${suite.name} (${runs} runs)…\n`);
    try {
      sections.push({ name: suite.name, rows: await suite.run({ runs }) });
    } catch (error) {
      // One suite failing costs its rows, not the table of the others (a full run takes about 25 minutes).
      failed.push(folder);
      process.stderr.write(
        `bench: ${suite.name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
    }
  }
  process.stdout.write(`${renderTable(sections)}\n`);
  if (failed.length > 0) {
    process.stderr.write(`bench: failed suites: ${failed.join(', ')}\n`);
    process.exitCode = 1;
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exitCode = 1;
});
