/**
 * Keeps the AWS SDK's notice about Node 22 off stderr, unless the operator set
 * AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED themselves (their value stays).
 *
 * On Node 20 the SDK prints a multi-line notice when its first client is made (its releases after January 2027 need
 * Node 22; the pinned one runs on 20): it would break the JSON log and the one-line start-up errors. Every maker of the
 * S3 driver (the service, the storage migration, the tests and benches) goes through its constructor, which calls
 * this before it makes the client; until 2026-12-07 only the service's own config set it, and the notice reached the
 * test and bench output.
 */
export function keepAwsSdkNoticeOff(env: NodeJS.ProcessEnv = process.env): void {
  if (env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) {
    env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  }
}
