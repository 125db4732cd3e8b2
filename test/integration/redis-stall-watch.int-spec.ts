import { randomBytes } from 'node:crypto';
import Redis from 'ioredis';
import { INVALIDATE_ALL, InvalidationBus } from '../../src/common/redis/invalidation-bus';
import { RedisService } from '../../src/common/redis/redis.module';
import { watchForStalls } from '../../src/common/redis/stall-watch';
import type { AppConfig } from '../../src/config/app-config';
import { readInfra } from '../setup/infra';
import { TcpProxy } from '../setup/tcp-proxy';
import { holdEventLoop, waitFor } from '../setup/wait';

const STALL_MS = 1500;

/** watchForStalls on a real Redis behind a TcpProxy: a connection that goes silent without closing is made anew. */
describe('Redis stall watch (integration)', () => {
  let proxy: TcpProxy;
  let client: Redis;
  let stop: () => void;
  const stalls: number[] = [];
  let connects = 0;

  beforeEach(async () => {
    proxy = await TcpProxy.inFrontOf(readInfra().redisUrl);
    client = new Redis(proxy.via(readInfra().redisUrl), { maxRetriesPerRequest: 1, connectTimeout: 2000 });
    client.on('error', () => undefined);
    client.on('connect', () => connects++);
    stalls.length = 0;
    connects = 0;
    stop = watchForStalls(client, (silentMs) => stalls.push(silentMs), STALL_MS);
    expect(await client.ping()).toBe('PONG');
  });
  afterEach(async () => {
    stop();
    client.disconnect();
    await proxy.close();
  });

  it('should make anew a ready connection that went silent, and serve once the path is back', async () => {
    // The path dies without a reset: the connection stays open and carries nothing.
    await proxy.setMode('silence');
    const lost = client.ping().catch((err: Error) => err);
    await waitFor('a stall reported', () => stalls.length > 0, 10_000);
    expect(stalls[0]).toBeGreaterThanOrEqual(STALL_MS);
    // The new connection lands in the dead path too (connected, its ready check never answered): made anew again.
    await waitFor('a second stall reported', () => stalls.length > 1, 10_000);
    await proxy.setMode('pass');
    await waitFor(
      'Redis answering again',
      async () => (await client.ping().catch(() => null)) === 'PONG',
      10_000,
    );
    // The command written into the dead path settled: resent on a new connection (as ioredis does after a lost one)
    // or refused once its retries were spent, never left waiting.
    const settled = await lost;
    expect(settled === 'PONG' || settled instanceof Error).toBe(true);
    expect(connects).toBeGreaterThanOrEqual(3);
  });

  it('should not count as silence the time this process itself was busy (the answer waited unread meanwhile)', async () => {
    // A command Redis answers after 1.2 s without blocking anyone (a blocking pop that times out), seen waiting by the
    // watch; then this process's event loop is held for longer than the stall time while the answer waits unread.
    const answered = client.blpop(`fxf-test:stall-watch:${randomBytes(4).toString('hex')}`, 1.2);
    await new Promise((r) => setTimeout(r, 1100));
    // Held from the check phase: the watch's tick, due meanwhile, runs before the answer is read (timers come first).
    await new Promise((r) => setImmediate(r));
    holdEventLoop(STALL_MS + 1500);
    expect(await answered).toBeNull();
    expect(stalls).toEqual([]);
    expect(connects).toBe(1);
  });

  it('should leave an idle connection alone, and a connection whose commands are answered', async () => {
    // Idle for longer than the stall time: nothing is waiting, so nothing is wrong.
    await new Promise((r) => setTimeout(r, STALL_MS + 1200));
    // Busy for longer than the stall time, every command answered (each a short wait on the server).
    const until = Date.now() + STALL_MS + 1200;
    while (Date.now() < until) {
      await Promise.all([client.ping(), client.eval('return 1', 0)]);
    }
    expect(stalls).toEqual([]);
    expect(connects).toBe(1);
  });
});

/**
 * The direct-link caches' invalidation subscription (InvalidationBus) on a real Redis behind a TcpProxy: a subscriber
 * hears nothing unless someone publishes, so only its heartbeat lets a silent connection be found and made anew.
 */
describe('Invalidation subscription over a path that goes silent (integration)', () => {
  /** A bus on a Redis client of its own, both behind a TcpProxy, with a prefix of their own; close() ends all three. */
  async function busBehindProxy(): Promise<{
    url: string;
    proxy: TcpProxy;
    config: Pick<AppConfig, 'redisUrl' | 'redisPrefix'>;
    bus: InvalidationBus;
    close: () => Promise<void>;
  }> {
    const url = readInfra().redisUrl;
    const proxy = await TcpProxy.inFrontOf(url);
    const config = { redisUrl: proxy.via(url), redisPrefix: `fxf-test:${randomBytes(6).toString('hex')}:` };
    const service = new RedisService(config as AppConfig);
    const bus = new InvalidationBus(service, config as AppConfig);
    const close = async (): Promise<void> => {
      await bus.onApplicationShutdown();
      await service.onApplicationShutdown();
      await proxy.close();
    };
    return { url, proxy, config, bus, close };
  }

  it('should stop counting as confirmed within seconds, subscribe anew once the path is back, and hear messages', async () => {
    const { url, proxy, config, bus, close } = await busBehindProxy();
    const heard: string[] = [];
    const publisher = new Redis(url);
    try {
      bus.listen((what) => heard.push(what));
      await waitFor('the subscription confirmed', () => bus.ready);
      heard.length = 0;
      await proxy.setMode('silence');
      await waitFor('the silent subscription seen as lost', () => !bus.ready, 15_000);
      expect(heard).toContain(INVALIDATE_ALL);
      await proxy.setMode('pass');
      await waitFor('subscribed anew', () => bus.ready, 15_000);
      await publisher.publish(`${config.redisPrefix}invalidate`, 'upload:after.png');
      await waitFor('the message heard', () => heard.includes('upload:after.png'), 5000);
    } finally {
      publisher.disconnect();
      await close();
    }
  }, 60_000);

  it('should leave no rejection unhandled when its connection closes the moment it is ready again', async () => {
    // Found as a suite that failed to run in a full run: an ioredis "Connection is closed." rejection nothing handled.
    // A rejection nothing handles ends a Node process, so a Redis that flaps could take an instance down with it.
    const { proxy, bus, close } = await busBehindProxy();
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      bus.listen(() => undefined);
      await waitFor('the subscription confirmed', () => bus.ready);
      const sub = (bus as unknown as { subscriber: Redis }).subscriber;
      // Its connection drops; the new one is closed from a 'ready' listener, which runs once the client is ready and
      // has written what it sends by itself on a new connection (as a shutdown or the stall watch may close it then).
      const closedAtReady = new Promise<void>((resolve) =>
        sub.once('ready', () => {
          sub.disconnect();
          resolve();
        }),
      );
      await proxy.setMode('refuse');
      await proxy.setMode('pass');
      await closedAtReady;
      await waitFor('the connection closed', () => sub.status === 'end');
      await new Promise((r) => setTimeout(r, 200));
      expect(unhandled).toEqual([]);
      expect(bus.ready).toBe(false);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await close();
    }
  }, 60_000);
});
