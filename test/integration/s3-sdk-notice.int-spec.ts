import type { S3Config } from '../../src/config/app-config';

const VARIABLE = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';

const config: S3Config = {
  endpoint: 'http://127.0.0.1:9',
  region: 'us-east-1',
  bucket: 'notice',
  prefix: '',
  accessKeyId: 'id',
  secretAccessKey: 'secret',
  forcePathStyle: true,
  timeoutMs: 1000,
  maxAttempts: 1,
};

type DriverModule = typeof import('../../src/modules/storage/s3.driver');

/**
 * The SDK's notices about the Node version while a driver is made, in a fresh module registry (the SDK notes in its
 * module that it has warned once).
 */
function noticesWhileMaking(): string[] {
  const emitted = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { S3StorageDriver } = require('../../src/modules/storage/s3.driver') as DriverModule;
      new S3StorageDriver(config).client.destroy();
    });
    return emitted.mock.calls
      .map(([warning]) => String(warning))
      .filter((w) => w.includes('NodeVersionSupport'));
  } finally {
    emitted.mockRestore();
  }
}

describe('the AWS SDK notice about Node 22', () => {
  const before = process.env[VARIABLE];
  afterEach(() => {
    if (before === undefined) {
      delete process.env[VARIABLE];
    } else {
      process.env[VARIABLE] = before;
    }
  });

  it('should be kept off stderr by the driver when the variable is not set', () => {
    delete process.env[VARIABLE];
    expect(noticesWhileMaking()).toEqual([]);
    expect(process.env[VARIABLE]).toBe('true');
  });

  it("should keep the operator's own value, and the SDK then says what it says", () => {
    process.env[VARIABLE] = 'false';
    const notices = noticesWhileMaking();
    expect(process.env[VARIABLE]).toBe('false');
    // The SDK's notice is for Node before 22 (this machine's Node 20): there it comes, as the operator asked.
    const major = Number(process.versions.node.split('.')[0]);
    expect(notices).toHaveLength(major < 22 ? 1 : 0);
  });
});
