import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { dataDirProblem } from './data-dir';
import { ENV_KEYS, EnvSchema } from './env.schema';
import { DEFAULT_IMAGE_CONCURRENCY, threadpoolSize } from './early-settings';

export type AppRole = 'all' | 'api' | 'worker';

export interface ModerationConfig {
  enabled: boolean;
  /**
   * An ONNX model with one input float32 [N,224,224,3] (RGB 0…255, NHWC: the bilinear align-corners resize,
   * not rounded; the model does any /255 itself) and one output float32 [N,5] (probabilities Drawing, Hentai,
   * Neutral, Porn, Sexy); unset = the converted nsfwjs model.
   */
  modelPath: string | undefined;
  pornHentaiThreshold: number;
  pornThreshold: number;
  frames: number;
  threads: number;
  /** onnxruntime intra-op threads of each session: what one input (a lone review) runs on. */
  sessionThreads: number;
  /** One more session, of this many intra-op threads, for single inputs while it is idle; 0: none (NsfwClassifier). */
  soloThreads: number;
  concurrency: number;
}

export interface ImageConfig {
  /** Most frames an animation may have (GIF, WebP, APNG); more → 415 processing_failed. */
  maxFrames: number;
  /** Largest embedded ICC profile kept; a larger (or malformed) one is dropped from the stored file. */
  maxIccBytes: number;
  /** Ordinary images decoded at once; one more lane runs a single heavy image (animation or > 16 MP). */
  concurrency: number;
  /** Longest one decode or re-encode may run before the upload fails with processing_failed. */
  timeoutSeconds: number;
  /**
   * Upload bytes read into memory at once for sniffing, decoding, stripping, review and storing, across the HTTP
   * processes of one `npm start` (src/cluster.ts): each holds its part (ImagePool). The other uploads wait on disk.
   * Bounds the memory of a burst of large uploads.
   */
  memoryBytes: number;
  /** Niceness of libvips' worker threads (Linux), so HTTP runs first when decodes fill the cores; 0 leaves them. */
  threadNice: number;
  /** Heavy animations (over 16 MP decoded) are decoded in a separate process (HeavyImageProcess); false: here. */
  heavyProcess: boolean;
  /** That process's niceness (Linux, 0–19). */
  heavyNice: number;
  /**
   * Heavy images (over 16 MP decoded) between their decode and the end of their review at once, across the HTTP
   * processes of one `npm start` (HeavyStage): their decoded frames are what a burst of big uploads holds.
   */
  heavyConcurrency: number;
}

export interface JanitorConfig {
  intervalMs: number;
  /** The first sweep after start (one instance of the deployment runs it). */
  startDelayMs: number;
  /** Stored keys looked up in one query; the sweep never holds more than this many in memory. */
  batchSize: number;
}

/** The S3-compatible store (STORAGE_DRIVER=s3, and `storage:migrate` to or from s3). */
export interface S3Config {
  /** Unset: AWS S3 itself (the endpoint follows from the region). */
  endpoint: string | undefined;
  region: string;
  /** Empty when unset (STORAGE_DRIVER=s3 refuses to start without it). */
  bucket: string;
  /** Put before every key (e.g. `images/`); the janitor only ever lists and deletes under it. */
  prefix: string;
  /** Both unset: the SDK's own chain (AWS_* variables, instance or pod role). */
  accessKeyId: string | undefined;
  secretAccessKey: string | undefined;
  /** `bucket` in the path instead of the host name (MinIO, Ceph, Garage and most self-hosted stores need it). */
  forcePathStyle: boolean;
  /** Deadline of one store call, its retries included (for a read: until the answer's headers). */
  timeoutMs: number;
  /** Tries of one store call (the SDK's backoff between them). */
  maxAttempts: number;
}

export interface RateLimitConfig {
  uploadsPerMinute: number;
  uploadsPerDay: number;
  managementPerMinute: number;
  failOpen: boolean;
}

/** The one typed configuration object. Built once from the environment; nothing else reads process.env. */
export class AppConfig {
  port!: number;
  publicUrl!: string;
  dataDir!: string;
  /** Unset: the service starts its embedded PostgreSQL in dataDir. */
  databaseUrl!: string | undefined;
  /** DATABASE_CREATE: create the database named by DATABASE_URL when it doesn't exist (off: a typo must not start an empty instance). */
  databaseCreate!: boolean;
  redisUrl!: string;
  /** Prefix of every Redis key (tests give each file its own). */
  redisPrefix!: string;
  /** Port of the embedded PostgreSQL (used only without DATABASE_URL). */
  embeddedPostgresPort!: number;
  secretKey!: string;
  /** Accepted for verification only, so tokens signed before a rotation live out their TTL. */
  secretKeyPrevious!: string | undefined;
  storageDriver!: 'local' | 's3';
  storageDir!: string;
  s3!: S3Config;
  /** Set: /images answers 302 to `<this>/<storage key>` (a CDN or public bucket) instead of streaming the bytes. */
  imagesRedirectBaseUrl!: string | undefined;
  migrateOnStart!: boolean;
  moderation!: ModerationConfig;
  rateLimit!: RateLimitConfig;
  images!: ImageConfig;
  /** Uploads one key (or dashboard user) may have in progress at once, across instances. */
  uploadsInFlightPerKey!: number;
  janitor!: JanitorConfig;
  /** How often expired uploads are soft-deleted (API.md Part 3: within a minute of their time). */
  expirySweepMs!: number;
  /** Default per-user quotas (null = unlimited); an admin may set a user's own. */
  storageQuota!: { bytes: number | null; files: number | null };
  registrationOpen!: boolean;
  allowPrivateWebhooks!: boolean;
  webhookTimeoutMs!: number;
  /** First retry delay of a failed webhook delivery; each next one doubles (tests use a few ms). */
  webhookRetryBaseMs!: number;
  /** The longest wait between two attempts (the doubling stops there). */
  webhookRetryMaxDelayMs!: number;
  /** Attempts per delivery, the first included (API.md: at least 5 over about an hour). */
  webhookMaxAttempts!: number;
  /** An endpoint with no success for this many days (and enough failures) is disabled; 0 never disables. */
  webhookDisableAfterDays!: number;
  webhookDisableMinFailures!: number;
  /** How often the reconciler looks for handed-over events whose job Redis lost, and how old they must be. */
  webhookReconcileEveryMs!: number;
  webhookReconcileAfterMs!: number;
  trustProxy!: boolean;
  appRole!: AppRole;
  /**
   * HTTP processes `npm start` runs (src/cluster.ts); unset = one per available core. Roles without HTTP run one.
   */
  webConcurrency!: number | undefined;
  adminEmail!: string | undefined;
  adminPassword!: string | undefined;
  logLevel!: string;
  /** `json` (one object a line, for collectors) or `pretty` (pino-pretty, for a developer's terminal). */
  logFormat!: 'json' | 'pretty';
  serveBannedImages!: boolean;
  /** Max upload size in bytes (API.md: 20 MB). */
  maxUploadBytes!: number;
  /** Time to receive a request's line and headers. */
  httpHeadersTimeoutMs!: number;
  /** Time to receive a whole request, body included: a 20 MB upload at ~280 kbit/s fits in the default 10 min. */
  httpRequestTimeoutMs!: number;
  /** An upload body that sends nothing for this long is cut off (400) and its temp file removed. */
  uploadIdleTimeoutMs!: number;
  /** A database connection that sent a query and heard nothing back this long is closed (socket-stall-watch.ts). */
  databaseStallTimeoutMs!: number;
  /** Widths and heights a variant may ask for (API.md Part 3, "Variants on the direct link"). */
  variantSizes!: readonly number[];
  /** Variants rendered at once per instance. */
  variantRenderConcurrency!: number;
  /** Variant renders waiting for a slot per instance; past it → 503 `unavailable` with Retry-After. */
  variantQueueLimit!: number;
  /**
   * Direct links (issue 14): how long an instance may reuse an upload's or variant's metadata without asking the
   * database. Deletes and bans reach every instance at once through Redis; this bounds staleness only when Redis
   * messages are lost. 0 turns the cache, and the fast path with it, off.
   */
  deliveryCacheSeconds!: number;
  /** Bytes of small stored images kept in memory per instance (0: read the file every time). */
  deliveryCacheBytes!: number;
  /** With nginx in front: full GETs answer `X-Accel-Redirect: <prefix><shard>/<key>` (local storage only). */
  accelRedirectPrefix: string | undefined;
  metrics!: MetricsConfig;
}

export interface MetricsConfig {
  /** METRICS_TOKEN: GET /metrics answers only `Authorization: Bearer <token>`; unset, it is a 404 on the main port. */
  token: string | undefined;
  /** METRICS_PORT: also serve /metrics on this port (the only way to scrape an APP_ROLE=worker process). */
  port: number | undefined;
  /** INSTANCE_ID: the instance_id label of every series (default hostname:pid). */
  instanceId: string | undefined;
}

/**
 * The review's sessions by default (the bench runs the service and its parts with the same). On a machine of two
 * cores or more: two sessions classify a transparent image's two backgrounds (or an animation's frames) side by side,
 * and two reviews at once; each runs an input on one intra-op thread, since two inputs side by side ran faster so than
 * on two threads each (four threads on two cores) on both kinds of machine where the two were compared; and one more
 * session, of two threads, takes a lone input (an opaque still) while it is idle, since on one of them (AVX2 cores) a
 * lone input took half the time on two threads (README, NSFW moderation). On one core: one session of one thread.
 */
export const MODERATION_THREAD_DEFAULTS: Readonly<
  Pick<ModerationConfig, 'threads' | 'sessionThreads' | 'soloThreads'>
> = Object.freeze({
  threads: Math.min(2, availableParallelism()),
  sessionThreads: 1,
  soloThreads: availableParallelism() > 1 ? 2 : 0,
});

export class ConfigError extends Error {}

/** Validates the environment and builds AppConfig; throws ConfigError naming every bad variable. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<AppConfig> = {},
): AppConfig {
  const raw: Record<string, string> = {};
  for (const key of ENV_KEYS) {
    const value = env[key];
    if (value !== undefined && value !== '') {
      raw[key] = value;
    }
  }
  const parsed = plainToInstance(EnvSchema, raw);
  const errors = validateSync(parsed, { whitelist: true });
  if (errors.length > 0) {
    // One message per variable (a rule's messages repeat when a value breaks several), with the value unless secret.
    const lines = errors.map((e) => {
      const messages = [...new Set(Object.values(e.constraints ?? {}))].join(', and ');
      return `${messages} (got ${shown(e.property, raw[e.property])})`;
    });
    throw new ConfigError(`Invalid environment variables: ${lines.join('; ')}. Fix them (see .env.example).`);
  }
  const port = parsed.PORT ?? 3000;
  const dataDir = resolve(parsed.DATA_DIR ?? './data');
  const config: AppConfig = {
    port,
    publicUrl: (parsed.PUBLIC_URL ?? `http://localhost:${port}`).replace(/\/+$/, ''),
    dataDir,
    databaseUrl: parsed.DATABASE_URL,
    databaseCreate: parsed.DATABASE_CREATE ?? false,
    redisUrl: parsed.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: parsed.REDIS_PREFIX ?? 'fxf:',
    embeddedPostgresPort: parsed.EMBEDDED_POSTGRES_PORT ?? 54329,
    secretKey: parsed.SECRET_KEY ?? '',
    secretKeyPrevious: parsed.SECRET_KEY_PREVIOUS,
    storageDriver: (parsed.STORAGE_DRIVER ?? 'local') as 'local' | 's3',
    storageDir: resolve(parsed.STORAGE_DIR ?? join(dataDir, 'images')),
    s3: {
      endpoint: parsed.S3_ENDPOINT?.replace(/\/+$/, ''),
      region: parsed.S3_REGION ?? 'us-east-1',
      bucket: parsed.S3_BUCKET ?? '',
      prefix: parsed.S3_PREFIX ?? '',
      accessKeyId: parsed.S3_ACCESS_KEY_ID,
      secretAccessKey: parsed.S3_SECRET_ACCESS_KEY,
      forcePathStyle: parsed.S3_FORCE_PATH_STYLE ?? false,
      timeoutMs: parsed.S3_TIMEOUT_MS ?? 10_000,
      maxAttempts: parsed.S3_MAX_ATTEMPTS ?? 3,
    },
    imagesRedirectBaseUrl: parsed.IMAGES_REDIRECT_BASE_URL?.replace(/\/+$/, ''),
    migrateOnStart: parsed.MIGRATE_ON_START ?? true,
    moderation: {
      enabled: parsed.MODERATION_ENABLED ?? true,
      modelPath: parsed.MODERATION_MODEL_PATH ? resolve(parsed.MODERATION_MODEL_PATH) : undefined,
      pornHentaiThreshold: parsed.MODERATION_PORN_HENTAI_THRESHOLD ?? 0.7,
      pornThreshold: parsed.MODERATION_PORN_THRESHOLD ?? 0.5,
      frames: parsed.MODERATION_FRAMES ?? 3,
      threads: parsed.MODERATION_THREADS ?? MODERATION_THREAD_DEFAULTS.threads,
      sessionThreads: parsed.MODERATION_SESSION_THREADS ?? MODERATION_THREAD_DEFAULTS.sessionThreads,
      soloThreads: parsed.MODERATION_SOLO_THREADS ?? MODERATION_THREAD_DEFAULTS.soloThreads,
      concurrency: parsed.MODERATION_CONCURRENCY ?? 2,
    },
    rateLimit: {
      uploadsPerMinute: parsed.RATE_LIMIT_UPLOADS_PER_MINUTE ?? 30,
      uploadsPerDay: parsed.RATE_LIMIT_UPLOADS_PER_DAY ?? 2000,
      managementPerMinute: parsed.RATE_LIMIT_MANAGEMENT_PER_MINUTE ?? 120,
      failOpen: parsed.RATE_LIMIT_FAIL_OPEN ?? false,
    },
    images: {
      maxFrames: parsed.MAX_FRAMES ?? 1000,
      maxIccBytes: parsed.MAX_ICC_BYTES ?? 64 * 1024,
      concurrency: parsed.IMAGE_CONCURRENCY ?? DEFAULT_IMAGE_CONCURRENCY,
      timeoutSeconds: parsed.IMAGE_TIMEOUT_SECONDS ?? 20,
      memoryBytes: (parsed.IMAGE_MEMORY_MB ?? 48) * 1024 * 1024,
      threadNice: parsed.IMAGE_THREAD_NICE ?? 0,
      heavyProcess: parsed.IMAGE_HEAVY_PROCESS ?? true,
      heavyNice: parsed.IMAGE_HEAVY_NICE ?? 19,
      heavyConcurrency: parsed.IMAGE_HEAVY_CONCURRENCY ?? 1,
    },
    uploadsInFlightPerKey: parsed.UPLOADS_IN_FLIGHT_PER_KEY ?? 4,
    janitor: {
      intervalMs: (parsed.JANITOR_INTERVAL_MINUTES ?? 60) * 60_000,
      startDelayMs: (parsed.JANITOR_START_DELAY_SECONDS ?? 60) * 1000,
      batchSize: parsed.JANITOR_BATCH_SIZE ?? 500,
    },
    expirySweepMs: (parsed.EXPIRY_SWEEP_SECONDS ?? 30) * 1000,
    storageQuota: { bytes: parsed.STORAGE_QUOTA_BYTES ?? null, files: parsed.STORAGE_QUOTA_FILES ?? null },
    registrationOpen: parsed.REGISTRATION_OPEN ?? true,
    allowPrivateWebhooks: parsed.ALLOW_PRIVATE_WEBHOOKS ?? false,
    webhookTimeoutMs: parsed.WEBHOOK_TIMEOUT_MS ?? 8000,
    webhookRetryBaseMs: parsed.WEBHOOK_RETRY_BASE_MS ?? 30000,
    webhookRetryMaxDelayMs: parsed.WEBHOOK_RETRY_MAX_DELAY_MS ?? 6 * 3600 * 1000,
    webhookMaxAttempts: parsed.WEBHOOK_MAX_ATTEMPTS ?? 22,
    webhookDisableAfterDays: parsed.WEBHOOK_DISABLE_AFTER_DAYS ?? 3,
    webhookDisableMinFailures: parsed.WEBHOOK_DISABLE_MIN_FAILURES ?? 10,
    webhookReconcileEveryMs: parsed.WEBHOOK_RECONCILE_EVERY_MS ?? 60_000,
    webhookReconcileAfterMs: parsed.WEBHOOK_RECONCILE_AFTER_MS ?? 5 * 60_000,
    trustProxy: parsed.TRUST_PROXY ?? false,
    appRole: (parsed.APP_ROLE ?? 'all') as AppRole,
    webConcurrency: parsed.WEB_CONCURRENCY,
    adminEmail: parsed.ADMIN_EMAIL,
    adminPassword: parsed.ADMIN_PASSWORD,
    logLevel: parsed.LOG_LEVEL ?? 'info',
    logFormat: (parsed.LOG_FORMAT ?? 'json') as 'json' | 'pretty',
    serveBannedImages: parsed.SERVE_BANNED_IMAGES ?? true,
    maxUploadBytes: 20 * 1024 * 1024,
    httpHeadersTimeoutMs: parsed.HTTP_HEADERS_TIMEOUT_MS ?? 20_000,
    httpRequestTimeoutMs: parsed.HTTP_REQUEST_TIMEOUT_MS ?? 600_000,
    uploadIdleTimeoutMs: parsed.UPLOAD_IDLE_TIMEOUT_MS ?? 30_000,
    databaseStallTimeoutMs: parsed.DATABASE_STALL_TIMEOUT_MS ?? 30_000,
    variantSizes: parsed.VARIANT_SIZES
      ? [...new Set(parsed.VARIANT_SIZES.split(',').map(Number))].sort((a, b) => a - b)
      : // media/variant-params.ts DEFAULT_VARIANT_SIZES (config/ imports nothing from src).
        [64, 128, 256, 320, 480, 640, 960, 1280, 1920, 2560],
    variantRenderConcurrency: parsed.VARIANT_RENDER_CONCURRENCY ?? 2,
    variantQueueLimit: parsed.VARIANT_QUEUE_LIMIT ?? 16,
    metrics: { token: parsed.METRICS_TOKEN, port: parsed.METRICS_PORT, instanceId: parsed.INSTANCE_ID },
    deliveryCacheSeconds: parsed.DELIVERY_CACHE_SECONDS ?? 10,
    deliveryCacheBytes: (parsed.DELIVERY_CACHE_MB ?? 32) * 1024 * 1024,
    accelRedirectPrefix: parsed.ACCEL_REDIRECT_PREFIX,
    ...overrides,
  };
  if (config.httpHeadersTimeoutMs > config.httpRequestTimeoutMs) {
    // Node refuses a headers timeout longer than the request timeout.
    throw new ConfigError(
      'Invalid environment variables: HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS',
    );
  }
  const s3Error = s3Problem(config);
  if (s3Error) {
    throw new ConfigError(`Invalid environment variables: ${s3Error}`);
  }
  const dataDirError = dataDirProblem(config.dataDir);
  if (dataDirError) {
    throw new ConfigError(dataDirError);
  }
  if (env === process.env) {
    reserveThreadpool(config.images.concurrency);
  }
  // Returned complete (the generated secret read or made once the data dir is known good), never patched later.
  return config.secretKey ? config : { ...config, secretKey: loadOrCreateSecret(config.dataDir) };
}

/** Freezes a config and every object in it (ConfigModule does this when the app starts with it). */
export function freezeDeep<T extends object>(value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object' && !Object.isFrozen(inner)) {
      freezeDeep(inner as object);
    }
  }
  return Object.freeze(value);
}

/** What the S3 settings lack for STORAGE_DRIVER=s3 (checked at boot, one sentence), or null. */
function s3Problem(config: AppConfig): string | null {
  const { s3 } = config;
  if (config.storageDriver === 's3' && !s3.bucket) {
    return 'STORAGE_DRIVER=s3 needs S3_BUCKET (and usually S3_ENDPOINT, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY)';
  }
  if (!s3.accessKeyId !== !s3.secretAccessKey) {
    return 'S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY must be set together (or both left unset for the AWS chain)';
  }
  return null;
}

const SECRET_VARS = new Set([
  'SECRET_KEY',
  'SECRET_KEY_PREVIOUS',
  'ADMIN_PASSWORD',
  'S3_SECRET_ACCESS_KEY',
  'METRICS_TOKEN',
]);

/** A rejected value as it may appear in a message: secrets hidden, passwords in URLs masked. */
function shown(name: string, value: string | undefined): string {
  if (SECRET_VARS.has(name)) {
    return 'a value that is not shown';
  }
  return JSON.stringify(
    String(value)
      .replace(/\/\/([^:/@]*):[^@/]*@/, '//$1:***@')
      .slice(0, 200),
  );
}

/**
 * sharp decodes on libuv's threadpool, which file I/O, DNS lookups and crypto share (4 threads by default). The image
 * lanes take at most `imageConcurrency + 1` of its threads; unless the operator chose a size, make room for 4 more,
 * so I/O never waits behind a decode. Takes effect only before the pool's first use: loadConfig runs before the app
 * loads (the early worker, which loads the app first, gets the same size in its fork's environment: early-settings.ts).
 */
function reserveThreadpool(imageConcurrency: number): void {
  if (!process.env.UV_THREADPOOL_SIZE) {
    process.env.UV_THREADPOOL_SIZE = String(threadpoolSize(imageConcurrency));
  }
}

/**
 * SECRET_KEY unset: generate one once and keep it in DATA_DIR (mode 0600) so restarts keep sessions and tokens valid.
 * Instances starting together on a fresh DATA_DIR race here: each writes its candidate to a private temp file and
 * link()s it into place, which is atomic and fails with EEXIST for all but one — the losers read the winner's key, so
 * every instance ends with the same secret and none ever reads a half-written file.
 */
function loadOrCreateSecret(dataDir: string): string {
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) {
    return readFileSync(file, 'utf8').trim();
  }
  mkdirSync(dataDir, { recursive: true });
  return publishSecretOnce(file);
}

/**
 * Writes a new secret to `file` unless another process got there first; returns the secret the file holds. Safe for
 * a caller that saw no file a moment ago while another instance was creating it.
 */
export function publishSecretOnce(file: string): string {
  const secret = randomBytes(32).toString('hex') + '\n';
  const candidate = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(candidate, secret, { mode: 0o600, flag: 'wx' });
  try {
    chmodSync(candidate, 0o600);
    linkSync(candidate, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'ENOSYS') {
      // A filesystem without hard links: exclusive create, still never two different keys.
      writeExclusive(file, secret);
    } else if (code !== 'EEXIST') {
      throw err;
    }
  } finally {
    rmSync(candidate, { force: true });
  }
  return readFileSync(file, 'utf8').trim();
}

function writeExclusive(file: string, content: string): void {
  try {
    writeFileSync(file, content, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw err;
    }
  }
}

/** Whether LOG_LEVEL asks for detail: a failed start then adds the stack (read raw: the config may be what failed). */
export function debugRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
}
