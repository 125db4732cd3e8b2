/**
 * `npm run bench [-- runs] [suite ...]`: every suite under bench/<name>/rows.ts, one after another, then one table.
 * With suite names, only those run (e.g. `npm run bench -- 5 direct-links uploads`).
 *
 * Each suite runs in a process of its own (this file with `--suite <name>`), which sends its rows back: a suite
 * leaves the process it ran in with a grown heap, pooled sockets and loaded modules, and the suites after it measured
 * their client's side (an upload's end to end is timed by this process's fetch) in that process. In two full runs
 * in one process, the 1080p upload's end to end read 69 ms where the uploads suite alone read 34–44 ms.
 */
import { fork } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type BenchRow, type BenchSuite, renderTable } from './lib/report';

/** What a suite's process sends back. */
type SuiteMessage = { name: string; rows: BenchRow[] };

/** Runs one suite here and sends its rows to the parent (the `--suite` mode). */
async function runSuite(folder: string, runs: number): Promise<void> {
  const { suite } = (await import(join(__dirname, folder, 'rows.ts'))) as { suite: BenchSuite };
  process.stderr.write(`bench: ${suite.name} (${runs} runs)…\n`);
  const message: SuiteMessage = { name: suite.name, rows: await suite.run({ runs }) };
  await new Promise<void>((resolve, reject) =>
    process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())),
  );
}

/** One suite in a process of its own: its rows, or an error naming why it has none. */
function inOwnProcess(folder: string, runs: number): Promise<SuiteMessage> {
  return new Promise((resolve, reject) => {
    const child = fork(__filename, ['--suite', folder, String(runs)], {
      // --expose-gc: a suite may collect its own garbage before it times something (uploads/rows.ts).
      execArgv: ['-r', 'ts-node/register/transpile-only', '--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result: SuiteMessage | undefined;
    child.on('message', (m: SuiteMessage) => (result = m));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      result && code === 0
        ? resolve(result)
        : reject(new Error(`its process exited (${signal ?? `code ${code}`}) without rows`)),
    );
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--suite') {
    await runSuite(args[1], Number(args[2]));
    return;
  }
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
  const sections: SuiteMessage[] = [];
  const failed: string[] = [];
  for (const folder of folders) {
    try {
      sections.push(await inOwnProcess(folder, runs));
    } catch (error) {
      // One suite failing costs its rows, not the table of the others (a full run takes 10–25 minutes).
      failed.push(folder);
      process.stderr.write(
        `bench: ${folder} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
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
