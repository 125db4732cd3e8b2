import type { Socket } from 'node:net';
import { Client } from 'pg';
import { watchSocketForStalls } from '../../src/database/socket-stall-watch';
import { readInfra } from '../setup/infra';

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

  it('should report a query that runs past the stall time (the setting must stay above the longest query)', async () => {
    await client.query('select pg_sleep(4.5)');
    expect(stalls).toHaveLength(1);
    expect(stalls[0]).toBeGreaterThanOrEqual(2500);
  });
});
