/**
 * The bench's S3 server in its own process (so the service and the store don't share one event loop, as they
 * wouldn't in production): starts s3rver on the port given, prints `ready <port> <directory>`, runs until killed.
 */
import { TestS3 } from '../../test/setup/s3-server';

TestS3.start(Number(process.argv[2] ?? 0)).then(
  (s3) => {
    process.stdout.write(`ready ${s3.port} ${s3.directory}\n`);
    const stop = (): void => {
      void s3.close().finally(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  },
  (err: unknown) => {
    process.stderr.write(`${String(err)}\n`);
    process.exit(1);
  },
);
