import { Transform } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  IsNumber,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  Max,
  Min,
  MinLength,
} from 'class-validator';

/** One message for every rule of a whole-number setting, so `PORT=abc` gets one true sentence, not three. */
function IntIn(min: number, max?: number): PropertyDecorator {
  const message =
    max === undefined
      ? `$property must be a whole number of at least ${min}`
      : `$property must be a whole number from ${min} to ${max}`;
  return (target, key) => {
    IsInt({ message })(target, key);
    Min(min, { message })(target, key);
    if (max !== undefined) {
      Max(max, { message })(target, key);
    }
  };
}

function NumIn(min: number, max: number): PropertyDecorator {
  const message = `$property must be a number from ${min} to ${max}`;
  return (target, key) => {
    IsNumber({}, { message })(target, key);
    Min(min, { message })(target, key);
    Max(max, { message })(target, key);
  };
}

const BOOL = { message: '$property must be true or false' };

const toBool = ({ value }: { value: unknown }): unknown => {
  if (typeof value !== 'string') {
    return value;
  }
  const v = value.trim().toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(v)) {
    return true;
  }
  if (['false', '0', 'no', 'off', ''].includes(v)) {
    return false;
  }
  return value;
};
const toInt = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value;
const toNum = ({ value }: { value: unknown }): unknown =>
  typeof value === 'string' && value.trim() !== '' && !Number.isNaN(Number(value)) ? Number(value) : value;

/** Every environment variable the service reads, with its rule. Defaults live in app-config.ts. */
export class EnvSchema {
  @IsOptional() @Transform(toInt) @IntIn(0, 65535) PORT?: number;
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  PUBLIC_URL?: string;
  @IsOptional() @IsString() DATA_DIR?: string;
  @IsOptional()
  @Matches(/^postgres(ql)?:\/\/[^\s/]+/, {
    message: '$property must be a postgres:// URL (postgres://user:password@host:5432/database)',
  })
  DATABASE_URL?: string;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) DATABASE_CREATE?: boolean;
  @IsOptional()
  @Matches(/^rediss?:\/\/[^\s/]*/, {
    message: '$property must be a redis:// or rediss:// URL (redis://[:password@]host:6379[/db])',
  })
  REDIS_URL?: string;
  @IsOptional() @IsString() REDIS_PREFIX?: string;
  @IsOptional() @Transform(toInt) @IntIn(1, 65535) EMBEDDED_POSTGRES_PORT?: number;
  @IsOptional() @IsString() @MinLength(32) SECRET_KEY?: string;
  @IsOptional() @IsString() @MinLength(32) SECRET_KEY_PREVIOUS?: string;
  @IsOptional() @IsIn(['local', 's3'], { message: '$property must be local or s3' }) STORAGE_DRIVER?: string;
  @IsOptional() @IsString() STORAGE_DIR?: string;
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  S3_ENDPOINT?: string;
  @IsOptional()
  @Matches(/^[a-z0-9-]{1,64}$/, { message: '$property must be a region name such as us-east-1 or auto' })
  S3_REGION?: string;
  @IsOptional()
  @Matches(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, {
    message: '$property must be a bucket name (3 to 63 lowercase letters, digits, dots and hyphens)',
  })
  S3_BUCKET?: string;
  @IsOptional()
  @Matches(/^(?!\/)[A-Za-z0-9._/-]{0,200}$/, {
    message:
      '$property must be up to 200 letters, digits, `.`, `_`, `-` and `/`, not starting with `/` (e.g. images/)',
  })
  S3_PREFIX?: string;
  @IsOptional() @IsString() S3_ACCESS_KEY_ID?: string;
  @IsOptional() @IsString() S3_SECRET_ACCESS_KEY?: string;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) S3_FORCE_PATH_STYLE?: boolean;
  @IsOptional() @Transform(toInt) @IntIn(100, 600000) S3_TIMEOUT_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 10) S3_MAX_ATTEMPTS?: number;
  @IsOptional()
  @IsUrl({ require_tld: false, protocols: ['http', 'https'], require_protocol: true })
  IMAGES_REDIRECT_BASE_URL?: string;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) MIGRATE_ON_START?: boolean;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) MODERATION_ENABLED?: boolean;
  @IsOptional() @IsString() MODERATION_MODEL_PATH?: string;
  @IsOptional() @Transform(toNum) @NumIn(0, 1) MODERATION_PORN_HENTAI_THRESHOLD?: number;
  @IsOptional() @Transform(toNum) @NumIn(0, 1) MODERATION_PORN_THRESHOLD?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 16) MODERATION_FRAMES?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 4) MODERATION_THREADS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 4) MODERATION_SESSION_THREADS?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 4) MODERATION_SOLO_THREADS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 64) MODERATION_CONCURRENCY?: number;
  @IsOptional() @Transform(toInt) @IntIn(1) RATE_LIMIT_UPLOADS_PER_MINUTE?: number;
  @IsOptional() @Transform(toInt) @IntIn(1) RATE_LIMIT_UPLOADS_PER_DAY?: number;
  @IsOptional() @Transform(toInt) @IntIn(1) RATE_LIMIT_MANAGEMENT_PER_MINUTE?: number;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) RATE_LIMIT_FAIL_OPEN?: boolean;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) REGISTRATION_OPEN?: boolean;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) ALLOW_PRIVATE_WEBHOOKS?: boolean;
  @IsOptional() @Transform(toInt) @IntIn(100, 60000) WEBHOOK_TIMEOUT_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 3600000) WEBHOOK_RETRY_BASE_MS?: number;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) TRUST_PROXY?: boolean;
  @IsOptional() @IsIn(['all', 'api', 'worker']) APP_ROLE?: string;
  @IsOptional() @Transform(toInt) @IntIn(1, 64) WEB_CONCURRENCY?: number;
  @IsOptional() @IsString() ADMIN_EMAIL?: string;
  @IsOptional() @IsString() @MinLength(10) ADMIN_PASSWORD?: string;
  @IsOptional()
  @IsIn(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
    message: '$property must be one of fatal, error, warn, info, debug, trace, silent',
  })
  LOG_LEVEL?: string;
  @IsOptional()
  @IsIn(['json', 'pretty'], { message: '$property must be json or pretty' })
  LOG_FORMAT?: string;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) SERVE_BANNED_IMAGES?: boolean;
  @IsOptional() @Transform(toInt) @IntIn(1, 86400000) WEBHOOK_RETRY_MAX_DELAY_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(5, 100) WEBHOOK_MAX_ATTEMPTS?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 365) WEBHOOK_DISABLE_AFTER_DAYS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 100000) WEBHOOK_DISABLE_MIN_FAILURES?: number;
  @IsOptional() @Transform(toInt) @IntIn(100, 3600000) WEBHOOK_RECONCILE_EVERY_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(100, 86400000) WEBHOOK_RECONCILE_AFTER_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 100000) MAX_FRAMES?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 16777216) MAX_ICC_BYTES?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 64) IMAGE_CONCURRENCY?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 600) IMAGE_TIMEOUT_SECONDS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 4096) IMAGE_MEMORY_MB?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 19) IMAGE_THREAD_NICE?: number;
  @IsOptional() @Transform(toBool) @IsBoolean(BOOL) IMAGE_HEAVY_PROCESS?: boolean;
  @IsOptional() @Transform(toInt) @IntIn(0, 19) IMAGE_HEAVY_NICE?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 64) IMAGE_HEAVY_CONCURRENCY?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 1000) UPLOADS_IN_FLIGHT_PER_KEY?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 10080) JANITOR_INTERVAL_MINUTES?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 86400) JANITOR_START_DELAY_SECONDS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 10000) JANITOR_BATCH_SIZE?: number;
  @IsOptional() @Transform(toInt) @IntIn(1, 60) EXPIRY_SWEEP_SECONDS?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, Number.MAX_SAFE_INTEGER) STORAGE_QUOTA_BYTES?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, Number.MAX_SAFE_INTEGER) STORAGE_QUOTA_FILES?: number;
  @IsOptional() @Transform(toInt) @IntIn(100, 600000) HTTP_HEADERS_TIMEOUT_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(100, 86400000) HTTP_REQUEST_TIMEOUT_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(100, 3600000) UPLOAD_IDLE_TIMEOUT_MS?: number;
  @IsOptional() @Transform(toInt) @IntIn(1000, 3600000) DATABASE_STALL_TIMEOUT_MS?: number;
  @IsOptional()
  @Matches(/^[1-9][0-9]{0,3}(,[1-9][0-9]{0,3}){0,31}$/, {
    message: '$property must be a comma-separated list of up to 32 pixel sizes from 1 to 9999',
  })
  VARIANT_SIZES?: string;
  @IsOptional() @Transform(toInt) @IntIn(1, 64) VARIANT_RENDER_CONCURRENCY?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 10000) VARIANT_QUEUE_LIMIT?: number;
  @IsOptional()
  @Matches(/^[\x21-\x7e]{16,512}$/, {
    message: '$property must be 16 to 512 printable characters without spaces (e.g. openssl rand -hex 32)',
  })
  METRICS_TOKEN?: string;
  @IsOptional() @Transform(toInt) @IntIn(1, 65535) METRICS_PORT?: number;
  @IsOptional()
  @Matches(/^[A-Za-z0-9._:-]{1,64}$/, {
    message: '$property must be 1 to 64 letters, digits, dots, dashes, underscores or colons',
  })
  INSTANCE_ID?: string;
  @IsOptional() @Transform(toInt) @IntIn(0, 300) DELIVERY_CACHE_SECONDS?: number;
  @IsOptional() @Transform(toInt) @IntIn(0, 4096) DELIVERY_CACHE_MB?: number;
  @IsOptional()
  @Matches(/^\/[A-Za-z0-9_/-]{0,62}\/$/, {
    message: '$property must be a path like /_fxf_storage/ (letters, digits, _ - /; starts and ends with /)',
  })
  ACCEL_REDIRECT_PREFIX?: string;
}

/**
 * The variable names above, for reading the environment (a class's optional fields can't be listed at run time);
 * env.schema.spec.ts fails when this list and the decorated fields differ either way.
 */
export const ENV_KEYS = [
  'PORT',
  'PUBLIC_URL',
  'DATA_DIR',
  'DATABASE_URL',
  'DATABASE_CREATE',
  'REDIS_URL',
  'REDIS_PREFIX',
  'EMBEDDED_POSTGRES_PORT',
  'SECRET_KEY',
  'SECRET_KEY_PREVIOUS',
  'STORAGE_DRIVER',
  'STORAGE_DIR',
  'S3_ENDPOINT',
  'S3_REGION',
  'S3_BUCKET',
  'S3_PREFIX',
  'S3_ACCESS_KEY_ID',
  'S3_SECRET_ACCESS_KEY',
  'S3_FORCE_PATH_STYLE',
  'S3_TIMEOUT_MS',
  'S3_MAX_ATTEMPTS',
  'IMAGES_REDIRECT_BASE_URL',
  'MIGRATE_ON_START',
  'MODERATION_ENABLED',
  'MODERATION_MODEL_PATH',
  'MODERATION_PORN_HENTAI_THRESHOLD',
  'MODERATION_PORN_THRESHOLD',
  'MODERATION_FRAMES',
  'MODERATION_THREADS',
  'MODERATION_SESSION_THREADS',
  'MODERATION_SOLO_THREADS',
  'MODERATION_CONCURRENCY',
  'RATE_LIMIT_UPLOADS_PER_MINUTE',
  'RATE_LIMIT_UPLOADS_PER_DAY',
  'RATE_LIMIT_MANAGEMENT_PER_MINUTE',
  'RATE_LIMIT_FAIL_OPEN',
  'REGISTRATION_OPEN',
  'ALLOW_PRIVATE_WEBHOOKS',
  'WEBHOOK_TIMEOUT_MS',
  'WEBHOOK_RETRY_BASE_MS',
  'WEBHOOK_RETRY_MAX_DELAY_MS',
  'WEBHOOK_MAX_ATTEMPTS',
  'WEBHOOK_DISABLE_AFTER_DAYS',
  'WEBHOOK_DISABLE_MIN_FAILURES',
  'WEBHOOK_RECONCILE_EVERY_MS',
  'WEBHOOK_RECONCILE_AFTER_MS',
  'TRUST_PROXY',
  'APP_ROLE',
  'WEB_CONCURRENCY',
  'ADMIN_EMAIL',
  'ADMIN_PASSWORD',
  'LOG_LEVEL',
  'LOG_FORMAT',
  'SERVE_BANNED_IMAGES',
  'MAX_FRAMES',
  'MAX_ICC_BYTES',
  'IMAGE_CONCURRENCY',
  'IMAGE_TIMEOUT_SECONDS',
  'IMAGE_MEMORY_MB',
  'IMAGE_THREAD_NICE',
  'IMAGE_HEAVY_PROCESS',
  'IMAGE_HEAVY_NICE',
  'IMAGE_HEAVY_CONCURRENCY',
  'UPLOADS_IN_FLIGHT_PER_KEY',
  'JANITOR_INTERVAL_MINUTES',
  'JANITOR_START_DELAY_SECONDS',
  'JANITOR_BATCH_SIZE',
  'EXPIRY_SWEEP_SECONDS',
  'STORAGE_QUOTA_BYTES',
  'STORAGE_QUOTA_FILES',
  'HTTP_HEADERS_TIMEOUT_MS',
  'HTTP_REQUEST_TIMEOUT_MS',
  'UPLOAD_IDLE_TIMEOUT_MS',
  'DATABASE_STALL_TIMEOUT_MS',
  'VARIANT_SIZES',
  'VARIANT_RENDER_CONCURRENCY',
  'VARIANT_QUEUE_LIMIT',
  'METRICS_TOKEN',
  'METRICS_PORT',
  'INSTANCE_ID',
  'DELIVERY_CACHE_SECONDS',
  'DELIVERY_CACHE_MB',
  'ACCEL_REDIRECT_PREFIX',
] as const satisfies readonly (keyof EnvSchema)[];
