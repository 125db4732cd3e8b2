import type Redis from 'ioredis';
import { watchInterval } from '../time/watch-interval';

/** How long commands may wait on a connection that sends nothing back before it is dropped and made anew. */
export const REDIS_STALL_MS = 5000;
const TICK_MS = 1000;

/**
 * Drops and reopens `client`'s connection when it has had commands waiting and received nothing for `stallMs`.
 *
 * A connection whose path died without a reset (a Redis host or node lost, a NAT or firewall that forgot the flow)
 * stays "ready" to ioredis: each command is written and never answered, so every request that needs Redis answers
 * 503 on its timeout, and ioredis reconnects only when TCP gives up, about 15 minutes later on Linux. A Redis that
 * is merely slow answers something within `stallMs` (each of ours is a short command or script); one that is dead
 * costs a reconnect, which ioredis keeps retrying until it is back. Commands written before the drop are resent
 * once by ioredis, as after any lost connection. Time this process spent held (watchInterval) is not counted.
 *
 * With `heartbeat`, a PING every `stallMs / 2` while the connection is up gives the watch something to wait on when
 * nothing else is sent (a subscriber, an idle BullMQ connection), so a dead connection is found before it is needed.
 * Returns the stop function (the timers do not keep the process up).
 */
export function watchForStalls(
  client: Redis,
  onStall: (silentMs: number) => void,
  stallMs = REDIS_STALL_MS,
  { heartbeat = false }: { heartbeat?: boolean } = {},
): () => void {
  let lastData = Date.now();
  let busySince: number | null = null;
  client.on('connect', () => {
    lastData = Date.now();
    client.stream.on('data', () => {
      lastData = Date.now();
    });
  });
  const timer = watchInterval(TICK_MS, (now, held) => {
    // 'connect': connected, not yet ready (the ready check waits on the connection too).
    const waiting =
      (client.status === 'ready' || client.status === 'connect') && client.commandQueue.length > 0;
    if (!waiting) {
      busySince = null;
      return;
    }
    // This process was held (nothing read meanwhile): the connection's silence is counted from now.
    busySince = held ? now : (busySince ?? now);
    const silentMs = now - Math.max(lastData, busySince);
    if (silentMs >= stallMs) {
      busySince = null;
      onStall(now - lastData);
      client.disconnect(true);
    }
  });
  const pinger = heartbeat
    ? setInterval(() => {
        if (client.status === 'ready') {
          client.ping().catch(() => undefined);
        }
      }, stallMs / 2).unref()
    : undefined;
  return () => {
    clearInterval(timer);
    clearInterval(pinger);
  };
}
