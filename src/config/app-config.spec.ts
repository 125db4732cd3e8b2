import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, publishSecretOnce } from './app-config';

describe('loadConfig', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'fxf-config-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('should apply the documented defaults', () => {
    const c = loadConfig({ DATA_DIR: dir });
    expect(c).toMatchObject({
      port: 3000,
      publicUrl: 'http://localhost:3000',
      redisUrl: 'redis://127.0.0.1:6379',
      databaseUrl: undefined,
      migrateOnStart: true,
      rateLimit: { uploadsPerMinute: 30, uploadsPerDay: 2000, managementPerMinute: 120, failOpen: false },
      moderation: {
        enabled: true,
        pornHentaiThreshold: 0.7,
        pornThreshold: 0.5,
        frames: 3,
        threads: Math.min(2, availableParallelism()),
        sessionThreads: 1,
        soloThreads: availableParallelism() > 1 ? 2 : 0,
        concurrency: 2,
      },
      maxUploadBytes: 20 * 1024 * 1024,
    });
  });

  it('should default the S3 settings, read them, and refuse s3 without a bucket', () => {
    expect(loadConfig({ DATA_DIR: dir })).toMatchObject({
      storageDriver: 'local',
      imagesRedirectBaseUrl: undefined,
      s3: {
        region: 'us-east-1',
        bucket: '',
        prefix: '',
        forcePathStyle: false,
        timeoutMs: 10_000,
        maxAttempts: 3,
      },
    });
    expect(
      loadConfig({
        DATA_DIR: dir,
        STORAGE_DRIVER: 's3',
        S3_ENDPOINT: 'http://minio:9000/',
        S3_REGION: 'auto',
        S3_BUCKET: 'fixitfy',
        S3_PREFIX: 'images/',
        S3_ACCESS_KEY_ID: 'id',
        S3_SECRET_ACCESS_KEY: 'secret',
        S3_FORCE_PATH_STYLE: 'true',
        S3_TIMEOUT_MS: '2500',
        IMAGES_REDIRECT_BASE_URL: 'https://cdn.example.com/i/',
      }),
    ).toMatchObject({
      storageDriver: 's3',
      imagesRedirectBaseUrl: 'https://cdn.example.com/i',
      s3: {
        endpoint: 'http://minio:9000',
        region: 'auto',
        bucket: 'fixitfy',
        prefix: 'images/',
        forcePathStyle: true,
        timeoutMs: 2500,
      },
    });
    expect(() => loadConfig({ DATA_DIR: dir, STORAGE_DRIVER: 's3' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: dir, STORAGE_DRIVER: 's3' })).toThrow(
      /STORAGE_DRIVER=s3 needs S3_BUCKET/,
    );
    for (const [name, value] of [
      ['S3_BUCKET', 'Not_A_Bucket'],
      ['S3_PREFIX', '/leading-slash'],
      ['S3_ENDPOINT', 'minio:9000'],
      ['S3_TIMEOUT_MS', '10'],
    ]) {
      expect(() => loadConfig({ DATA_DIR: dir, [name]: value })).toThrow(new RegExp(name));
    }
  });

  it('should default and validate the image, in-flight and janitor limits', () => {
    expect(loadConfig({ DATA_DIR: dir })).toMatchObject({
      images: {
        maxFrames: 1000,
        maxIccBytes: 65536,
        concurrency: 2,
        timeoutSeconds: 20,
        memoryBytes: 48 * 1024 * 1024,
      },
      uploadsInFlightPerKey: 4,
      janitor: { intervalMs: 3_600_000, startDelayMs: 60_000, batchSize: 500 },
    });
    expect(
      loadConfig({
        DATA_DIR: dir,
        MAX_FRAMES: '50',
        JANITOR_BATCH_SIZE: '10',
        UPLOADS_IN_FLIGHT_PER_KEY: '1',
      }),
    ).toMatchObject({ images: { maxFrames: 50 }, janitor: { batchSize: 10 }, uploadsInFlightPerKey: 1 });
    expect(() =>
      loadConfig({
        DATA_DIR: dir,
        MAX_FRAMES: '0',
        IMAGE_CONCURRENCY: 'many',
        UPLOADS_IN_FLIGHT_PER_KEY: '0',
      }),
    ).toThrow(/MAX_FRAMES.*IMAGE_CONCURRENCY.*UPLOADS_IN_FLIGHT_PER_KEY/);
  });

  it('should generate SECRET_KEY once into DATA_DIR with mode 0600 and reuse it', () => {
    const first = loadConfig({ DATA_DIR: dir }).secretKey;
    const file = join(dir, 'secret.key');
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8').trim()).toBe(first);
    expect(loadConfig({ DATA_DIR: dir }).secretKey).toBe(first);
  });

  it('should stop with a message naming every bad variable', () => {
    const bad = () =>
      loadConfig({ DATA_DIR: dir, PORT: 'eighty', MODERATION_PORN_THRESHOLD: '2', APP_ROLE: 'boss' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/PORT.*MODERATION_PORN_THRESHOLD.*APP_ROLE|PORT/);
    try {
      bad();
    } catch (err) {
      expect((err as Error).message).toContain('PORT');
      expect((err as Error).message).toContain('MODERATION_PORN_THRESHOLD');
      expect((err as Error).message).toContain('APP_ROLE');
    }
  });

  it('should default metrics to closed and validate METRICS_TOKEN, METRICS_PORT and INSTANCE_ID', () => {
    expect(loadConfig({ DATA_DIR: dir }).metrics).toEqual({
      token: undefined,
      port: undefined,
      instanceId: undefined,
    });
    expect(
      loadConfig({
        DATA_DIR: dir,
        METRICS_TOKEN: 'a'.repeat(32),
        METRICS_PORT: '9464',
        INSTANCE_ID: 'api-1.eu:a',
      }).metrics,
    ).toEqual({ token: 'a'.repeat(32), port: 9464, instanceId: 'api-1.eu:a' });
    const bad = () =>
      loadConfig({ DATA_DIR: dir, METRICS_TOKEN: 'short', METRICS_PORT: '70000', INSTANCE_ID: 'has space' });
    expect(bad).toThrow(/METRICS_TOKEN.*METRICS_PORT.*INSTANCE_ID/s);
    // A token with a space can't be sent as one Bearer credential; and the token never appears in the message.
    expect(() => loadConfig({ DATA_DIR: dir, METRICS_TOKEN: 'sixteen chars and spaces' })).toThrow(
      /^(?![\s\S]*sixteen chars)[\s\S]*METRICS_TOKEN/,
    );
  });

  it('should refuse a short SECRET_KEY and a non-URL PUBLIC_URL', () => {
    expect(() => loadConfig({ DATA_DIR: dir, SECRET_KEY: 'short' })).toThrow(/SECRET_KEY/);
    expect(() => loadConfig({ DATA_DIR: dir, PUBLIC_URL: 'not a url' })).toThrow(/PUBLIC_URL/);
  });

  it('should parse booleans and strip a trailing slash from PUBLIC_URL', () => {
    const c = loadConfig({
      DATA_DIR: dir,
      MODERATION_ENABLED: 'false',
      PUBLIC_URL: 'https://img.example.com/',
    });
    expect(c.moderation.enabled).toBe(false);
    expect(loadConfig({ DATA_DIR: dir, MODERATION_THREADS: '1' }).moderation.threads).toBe(1);
    expect(loadConfig({ DATA_DIR: dir, MODERATION_SESSION_THREADS: '1' }).moderation.sessionThreads).toBe(1);
    expect(() => loadConfig({ DATA_DIR: dir, MODERATION_SESSION_THREADS: '0' })).toThrow(
      /MODERATION_SESSION_THREADS/,
    );
    expect(() => loadConfig({ DATA_DIR: dir, MODERATION_SESSION_THREADS: '5' })).toThrow(
      /MODERATION_SESSION_THREADS/,
    );
    expect(loadConfig({ DATA_DIR: dir, MODERATION_SOLO_THREADS: '2' }).moderation.soloThreads).toBe(2);
    expect(loadConfig({ DATA_DIR: dir, MODERATION_SOLO_THREADS: '0' }).moderation.soloThreads).toBe(0);
    for (const bad of ['5', '-1', 'two']) {
      expect(() => loadConfig({ DATA_DIR: dir, MODERATION_SOLO_THREADS: bad })).toThrow(
        /MODERATION_SOLO_THREADS/,
      );
    }
    expect(c.publicUrl).toBe('https://img.example.com');
    expect(() => loadConfig({ DATA_DIR: dir, TRUST_PROXY: 'maybe' })).toThrow(/TRUST_PROXY/);
  });

  it('should keep the first secret when a second instance saw no file a moment ago (no EEXIST, one key)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fxf-secret-'));
    try {
      const file = join(dir, 'secret.key');
      // Both instances passed the "is there a file?" check; the first publishes, then the second arrives.
      const first = publishSecretOnce(file);
      const second = publishSecretOnce(file);
      expect(second).toBe(first);
      expect(readFileSync(file, 'utf8').trim()).toBe(first);
      expect(readdirSync(dir)).toEqual(['secret.key']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('should refuse HTTP_HEADERS_TIMEOUT_MS above HTTP_REQUEST_TIMEOUT_MS', () => {
    expect(() =>
      loadConfig({
        SECRET_KEY: 'x'.repeat(32),
        HTTP_HEADERS_TIMEOUT_MS: '5000',
        HTTP_REQUEST_TIMEOUT_MS: '1000',
      }),
    ).toThrow(ConfigError);
  });
});
