/**
 * Keeps onnxruntime's usage telemetry off, unless the operator set ORT_DISABLE_TELEMETRY themselves (their value stays).
 *
 * onnxruntime-node's Linux and macOS builds (1.30) report to Microsoft through its 1DS SDK unless ORT_DISABLE_TELEMETRY
 * is 1 when the runtime starts: a process event (OS, the executable's path), session, model and runtime events, a
 * device id kept in `$HOME/.cache/Microsoft/DeveloperTools/.onnxruntime` beside an offline cache of unsent events, and
 * `mat-debug-<pid>.log` (every process) and `.ses` in `$TMPDIR` (microsoft/onnxruntime#27379). A self-hosted service
 * sends nothing its operator did not set up, so InferenceWorker calls this before it starts a session's worker thread.
 * The native library reads the process's environment, which only the main thread's process.env writes to (a worker
 * thread's is a copy): call it on the main thread.
 */
export function keepOrtTelemetryOff(env: NodeJS.ProcessEnv = process.env): void {
  if (env.ORT_DISABLE_TELEMETRY === undefined) {
    env.ORT_DISABLE_TELEMETRY = '1';
  }
}
