/** The part of a pino logger this needs. */
export interface FatalLogger {
  fatal(obj: Record<string, unknown>, msg: string): void;
}

/**
 * Writes a process's crash (an uncaught exception, or an unhandled rejection, which Node raises as one) to the app's
 * log as one `fatal` JSON line with the error and its stack, before Node's own handling prints it to stderr and ends
 * the process with code 1 (a cluster's primary then starts another worker). Node's handling is left as it is: after
 * an error nobody caught, the process's state is unknown, so it still stops. Without this, the one line an operator
 * most needs went only to stderr, outside the JSON log that their collector reads. `uncaughtExceptionMonitor` only
 * observes: it neither keeps the process alive nor changes its exit code.
 */
export function logCrashes(logger: FatalLogger): void {
  process.on('uncaughtExceptionMonitor', (err: unknown, origin: NodeJS.UncaughtExceptionOrigin) => {
    logger.fatal(
      { err, origin },
      origin === 'unhandledRejection'
        ? 'A promise was rejected and nothing handled it: the process stops'
        : 'An exception was thrown and nothing caught it: the process stops',
    );
  });
}
