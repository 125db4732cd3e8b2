/**
 * How many turns the event loop took while `work` ran: a callback re-queued with setImmediate counts each check phase.
 * Work done in one synchronous go lets it run at most once; work that yields every step lets it run once per step.
 */
export async function loopTurnsDuring(work: () => Promise<unknown>): Promise<number> {
  let turns = 0;
  let running = true;
  const tick = (): void => {
    turns++;
    if (running) {
      setImmediate(tick);
    }
  };
  setImmediate(tick);
  try {
    await work();
  } finally {
    running = false;
  }
  return turns;
}
