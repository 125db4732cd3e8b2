import type { Socket } from 'node:net';
import { watchInterval } from '../common/time/watch-interval';

const TICK_MS = 1000;

/**
 * Calls `onStall` once when `socket` has sent bytes that nothing came back for within `stallMs`: a database
 * connection whose path died without a reset (its host or node lost, a NAT or firewall that forgot the flow). The
 * query on it would wait until TCP gave up, about 15 minutes on Linux, holding its request and a pool slot; every
 * new connection made meanwhile goes into the same dead path, until the pool is all stuck. PostgreSQL answers
 * every message the driver sends, but it says nothing while a query runs: `stallMs` must be longer than the longest
 * query the app makes. A connection that only sits idle (nothing sent since the last answer) is never judged, nor
 * is time this process spent held (watchInterval). Stops by itself when the socket closes.
 */
export function watchSocketForStalls(
  socket: Socket,
  stallMs: number,
  onStall: (silentMs: number) => void,
): void {
  let lastData = Date.now();
  let writtenAtLastData = socket.bytesWritten;
  let waitingSince: number | null = null;
  socket.on('data', () => {
    lastData = Date.now();
    writtenAtLastData = socket.bytesWritten;
    waitingSince = null;
  });
  const timer = watchInterval(TICK_MS, (now, held) => {
    if (socket.destroyed) {
      clearInterval(timer);
      return;
    }
    if (socket.bytesWritten <= writtenAtLastData) {
      waitingSince = null;
      return;
    }
    // This process was held (nothing read meanwhile): the connection's silence is counted from now.
    waitingSince = held ? now : (waitingSince ?? now);
    if (now - waitingSince >= stallMs) {
      clearInterval(timer);
      onStall(now - lastData);
    }
  });
  socket.once('close', () => clearInterval(timer));
}
