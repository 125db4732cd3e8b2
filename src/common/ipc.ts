/**
 * The two ends of the cluster's IPC channel as the code that talks over it needs them (a worker's `process`, the
 * primary's `cluster.Worker`), so each protocol (the heavy stage's slots, the metrics scrape) names only what it
 * sends. `Out` is what this end sends.
 */

/** A worker's side of the channel to its primary (`process` in a cluster worker). */
export interface IpcChannel<Out> {
  send?(message: Out, handle: undefined, options: object, callback: (error: Error | null) => void): unknown;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
}

/** The primary's side of the channel to one worker (a cluster Worker, or any child process with an IPC channel). */
export interface IpcPeer<Out> {
  send(message: Out, handle: undefined, options: object, callback: (error: Error | null) => void): unknown;
}
