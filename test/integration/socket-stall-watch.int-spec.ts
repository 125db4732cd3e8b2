import type { Socket } from 'node:net';
import { Client } from 'pg';
import { watchSocketForStalls } from '../../src/database/socket-stall-watch';
import { readInfra } from '../setup/infra';
import { holdEventLoop } from '../setup/wait';

/** watchSocketForStalls on a real PostgreSQL connection (pg's own socket), without faults: what it leaves alone. */
describe('Database socket stall watch (integration)', () => {
  let client: Client;
  const stalls: number[] = [];

  beforeEach(async () => {
    client = new Client({ connectionString: readInfra().adminUrl });
    await client.connect();
    stalls.length = 0;
    const socket = (client as unknown as { connection: { stream: Socket } }).connection.stream;
    watchSocketForStalls(socket, 2500, (silentMs) => stalls.push(silentMs));
  });
  afterEach(() => client.end().catch(() => undefined));

  it('should leave an idle connection and a query answered within the stall time alone', async () => {
    await new Promise((r) => setTimeout(r, 3500));
    await client.query('select pg_sleep(1.5)');
    await client.query('select 1');
    await new Promise((r) => setTimeout(r, 1500));
    expect(stalls).toEqual([]);
  });

  it('should not count as silence the time this process itself was busy (the answer waited unread meanwhile)', async () => {
    // A query answered after 1.5 s, seen waiting by the watch; then this process's event loop is held for longer than
    // the stall time, while the answer arrives and waits to be read.
    const answered = client.query('select pg_sleep(1.5)');
    await new Promise((r) => setTimeout(r, 1200));
    // Held from the check phase: the watch's tick, due meanwhile, runs before the answer is read (timers come first).
    await new Promise((r) => setImmediate(r));
    holdEventLoop(3000);
    await answered;
    await client.query('select 1');
    expect(stalls).toEqual([]);
  });

  it('should report a query that runs past the stall time (the setting must stay above the longest query)', async () => {
    await client.query('select pg_sleep(4.5)');
    expect(stalls).toHaveLength(1);
    expect(stalls[0]).toBeGreaterThanOrEqual(2500);
  });
});
