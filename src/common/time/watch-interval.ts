/**
 * A timer for watches that judge silence on a connection ("sent, nothing back for N ms"). Each tick is told whether
 * this process's event loop was held since the previous one (the tick came more than a tick late): a long
 * synchronous task, a full collection, a paused VM. During such a hold nothing is read from any socket, so an answer
 * may be waiting unread; and the timers run before the sockets are read when the loop resumes. A watch must not count
 * that time as the peer's silence. The timer does not keep the process up.
 */
export function watchInterval(tickMs: number, onTick: (now: number, held: boolean) => void): NodeJS.Timeout {
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    const held = now - last > 2 * tickMs;
    last = now;
    onTick(now, held);
  }, tickMs);
  timer.unref();
  return timer;
}
