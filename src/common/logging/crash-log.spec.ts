import { execFile } from 'node:child_process';
import { join } from 'node:path';

/**
 * logCrashes only observes Node's own handling of a crash, so it is tested on real crashes: a child process (ts-node,
 * as jest's transform compiles here) with a real pino logger on its stdout, crashed in each of the two ways Node
 * reports.
 */
const CHILD = `
const pino = require('pino');
const { logCrashes } = require('./src/common/logging/crash-log');
logCrashes(pino());
if (process.argv[1] === 'rejection') {
  void Promise.reject(new Error('a rejection nothing handles'));
} else {
  setTimeout(() => {
    throw new Error('an exception nothing catches');
  }, 1);
}
`;

function crash(
  how: 'rejection' | 'exception',
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', '-e', CHILD, how],
      { cwd: join(__dirname, '..', '..', '..') },
      (error, stdout, stderr) => resolve({ code: error ? (error.code as number) : 0, stdout, stderr }),
    );
  });
}

describe('logCrashes', () => {
  it.each([
    ['rejection', 'unhandledRejection', 'A promise was rejected', 'a rejection nothing handles'],
    ['exception', 'uncaughtException', 'An exception was thrown', 'an exception nothing catches'],
  ] as const)(
    'should log an unhandled %s as one fatal JSON line with its stack, and leave the exit to Node (code 1)',
    async (how, origin, msg, message) => {
      const { code, stdout, stderr } = await crash(how);
      expect(code).toBe(1);
      const lines = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toEqual([
        expect.objectContaining({
          level: 60,
          origin,
          msg: expect.stringContaining(msg),
          err: expect.objectContaining({ type: 'Error', message, stack: expect.stringContaining(message) }),
        }),
      ]);
      // Node's own report is unchanged.
      expect(stderr).toContain(message);
    },
  );
});
