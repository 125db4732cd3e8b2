import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dataDirProblem } from './data-dir';
import { ENV_KEYS, EnvSchema } from './env.schema';

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
  concurrency: number;
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
  storageDriver!: 'local';
  storageDir!: string;
  migrateOnStart!: boolean;
  moderation!: ModerationConfig;
  rateLimit!: RateLimitConfig;
  registrationOpen!: boolean;
  allowPrivateWebhooks!: boolean;
  webhookTimeoutMs!: number;
  /** First retry delay of a failed webhook delivery; each next one doubles (tests use a few ms). */
  webhookRetryBaseMs!: number;
  trustProxy!: boolean;
  appRole!: AppRole;
  adminEmail!: string | undefined;
  adminPassword!: string | undefined;
  logLevel!: string;
  /** `json` (one object a line, for collectors) or `pretty` (pino-pretty, for a developer's terminal). */
  logFormat!: 'json' | 'pretty';
  serveBannedImages!: boolean;
  /** Max upload size in bytes (API.md: 20 MB). */
  maxUploadBytes!: number;
}

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
    storageDriver: 'local',
    storageDir: resolve(parsed.STORAGE_DIR ?? join(dataDir, 'images')),
    migrateOnStart: parsed.MIGRATE_ON_START ?? true,
    moderation: {
      enabled: parsed.MODERATION_ENABLED ?? true,
      modelPath: parsed.MODERATION_MODEL_PATH ? resolve(parsed.MODERATION_MODEL_PATH) : undefined,
      pornHentaiThreshold: parsed.MODERATION_PORN_HENTAI_THRESHOLD ?? 0.7,
      pornThreshold: parsed.MODERATION_PORN_THRESHOLD ?? 0.5,
      frames: parsed.MODERATION_FRAMES ?? 3,
      threads: parsed.MODERATION_THREADS ?? 1,
      concurrency: parsed.MODERATION_CONCURRENCY ?? 2,
    },
    rateLimit: {
      uploadsPerMinute: parsed.RATE_LIMIT_UPLOADS_PER_MINUTE ?? 30,
      uploadsPerDay: parsed.RATE_LIMIT_UPLOADS_PER_DAY ?? 2000,
      managementPerMinute: parsed.RATE_LIMIT_MANAGEMENT_PER_MINUTE ?? 120,
      failOpen: parsed.RATE_LIMIT_FAIL_OPEN ?? false,
    },
    registrationOpen: parsed.REGISTRATION_OPEN ?? true,
    allowPrivateWebhooks: parsed.ALLOW_PRIVATE_WEBHOOKS ?? false,
    webhookTimeoutMs: parsed.WEBHOOK_TIMEOUT_MS ?? 8000,
    webhookRetryBaseMs: parsed.WEBHOOK_RETRY_BASE_MS ?? 30000,
    trustProxy: parsed.TRUST_PROXY ?? false,
    appRole: (parsed.APP_ROLE ?? 'all') as AppRole,
    adminEmail: parsed.ADMIN_EMAIL,
    adminPassword: parsed.ADMIN_PASSWORD,
    logLevel: parsed.LOG_LEVEL ?? 'info',
    logFormat: (parsed.LOG_FORMAT ?? 'json') as 'json' | 'pretty',
    serveBannedImages: parsed.SERVE_BANNED_IMAGES ?? true,
    maxUploadBytes: 20 * 1024 * 1024,
    ...overrides,
  };
  const dataDirError = dataDirProblem(config.dataDir);
  if (dataDirError) {
    throw new ConfigError(dataDirError);
  }
  if (!config.secretKey) {
    config.secretKey = loadOrCreateSecret(config.dataDir);
  }
  return config;
}

const SECRET_VARS = new Set(['SECRET_KEY', 'SECRET_KEY_PREVIOUS', 'ADMIN_PASSWORD']);

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

/** SECRET_KEY unset: generate one once and keep it in DATA_DIR (mode 0600) so restarts keep sessions and tokens valid. */
function loadOrCreateSecret(dataDir: string): string {
  const file = join(dataDir, 'secret.key');
  if (existsSync(file)) {
    return readFileSync(file, 'utf8').trim();
  }
  mkdirSync(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writeFileSync(file, secret + '\n', { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return secret;
}

/** Whether LOG_LEVEL asks for detail: a failed start then adds the stack (read raw: the config may be what failed). */
export function debugRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.LOG_LEVEL === 'debug' || env.LOG_LEVEL === 'trace';
}
