import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { LuaScript } from '../../src/common/redis/lua-script';
import { readInfra } from '../setup/infra';
import { dropRedisKeys } from '../setup/test-app';

/** The scripts of the hot paths (request count, rate limit, upload slots) run by SHA, on the real Redis. */
describe('LuaScript (EVALSHA, EVAL once Redis lacks it)', () => {
  const { redisUrl } = readInfra();
  const prefix = `fxf-test:${randomBytes(6).toString('hex')}:`;
  const client = new Redis(redisUrl, { keyPrefix: prefix });
  const raw = new Redis(redisUrl);
  /** A script no other test loads (its own comment), so this test alone decides whether Redis holds it. */
  const fresh = (body: string): LuaScript => new LuaScript(`-- ${randomBytes(8).toString('hex')}\n${body}`);
  const held = async (s: LuaScript): Promise<number> => ((await raw.script('EXISTS', s.sha)) as number[])[0];

  afterAll(async () => {
    await dropRedisKeys(redisUrl, prefix);
    client.disconnect();
    raw.disconnect();
  });

  it('loads a script Redis does not hold with its first call, then runs it by SHA on the prefixed keys', async () => {
    const incr = fresh("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    expect(await held(incr)).toBe(0);
    expect(await incr.run(client, ['n'], ['2'])).toBe(2);
    expect(await held(incr)).toBe(1);
    expect(await incr.run(client, ['n'], ['3'])).toBe(5);
    expect(await raw.get(`${prefix}n`)).toBe('5');
  });

  it('runs again after Redis forgot its scripts (a restart, SCRIPT FLUSH)', async () => {
    const echo = fresh('return ARGV[1]');
    expect(await echo.run(client, [], ['a'])).toBe('a');
    await raw.script('FLUSH');
    expect(await held(echo)).toBe(0);
    expect(await echo.run(client, [], ['b'])).toBe('b');
    expect(await held(echo)).toBe(1);
  });

  it("lets the script's own error through, without running it a second time", async () => {
    const failing = fresh("redis.call('INCR', KEYS[2]); return redis.call('INCR', KEYS[1])");
    await client.set('text', 'not a number');
    await expect(failing.run(client, ['text', 'runs'], [])).rejects.toThrow(/not an integer/);
    expect(await raw.get(`${prefix}runs`)).toBe('1');
    await expect(failing.run(client, ['text', 'runs'], [])).rejects.toThrow(/not an integer/);
    expect(await raw.get(`${prefix}runs`)).toBe('2');
  });
});
