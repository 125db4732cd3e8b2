/** A start-up failure the operator can fix: its message is one sentence that names the setting and the fix. */
export class StartupError extends Error {}
