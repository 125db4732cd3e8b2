import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { AppError } from '../../common/errors/app-error';
import type { S3Config } from '../../config/app-config';
import { keepAwsSdkNoticeOff } from '../../config/aws-sdk-notice';
import { contentTypeOfKey, objectCacheControl } from './content-type';
import { type PutOptions, StorageDriver } from './storage-driver';

const SAFE_KEY = /^[A-Za-z0-9._-]{1,128}$/;

export interface S3DriverOptions {
  /** Keys per ListObjectsV2 page (the janitor's paging; tests use a few to cross pages). */
  listPageSize?: number;
}

/**
 * Objects in an S3-compatible bucket (AWS S3, Cloudflare R2, MinIO, Ceph RGW, Garage; tested on s3rver), one per
 * key, under S3_PREFIX. A PUT is atomic in S3 (a reader sees the old object, none, or the whole new one), so there
 * are no temp objects. Every write carries Content-MD5, which every S3-compatible store verifies (400 BadDigest on
 * a mismatch); the SDK's newer default CRC32 checksums and `aws-chunked` bodies are turned off
 * (`WHEN_REQUIRED`), because several stores refuse them. Each call has a deadline (S3_TIMEOUT_MS, retries
 * included): a slow store fails that one request, never the others.
 */
export class S3StorageDriver extends StorageDriver {
  readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly timeoutMs: number;
  private readonly listPageSize: number;

  constructor(config: S3Config, options: S3DriverOptions = {}) {
    super();
    this.bucket = config.bucket;
    this.prefix = config.prefix;
    this.timeoutMs = config.timeoutMs;
    this.listPageSize = options.listPageSize ?? 1000;
    keepAwsSdkNoticeOff();
    this.client = new S3Client({
      endpoint: config.endpoint,
      region: config.region,
      forcePathStyle: config.forcePathStyle,
      credentials:
        config.accessKeyId && config.secretAccessKey
          ? { accessKeyId: config.accessKeyId, secretAccessKey: config.secretAccessKey }
          : undefined,
      maxAttempts: config.maxAttempts,
      // Checksums only where the API requires them: no CRC32 trailer, no `aws-chunked` encoding (R2, Garage,
      // older MinIO and Ceph answer those with 400/501), no validation of checksums a store may not send.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: config.timeoutMs,
        // Also bounds a stalled body (a read whose bytes stop coming): the socket is destroyed after this long idle.
        requestTimeout: config.timeoutMs,
        httpAgent: { keepAlive: true, maxSockets: 256 },
        httpsAgent: { keepAlive: true, maxSockets: 256 },
      },
    });
  }

  async put(key: string, data: Buffer, options: PutOptions = {}): Promise<void> {
    const Key = this.objectKey(key);
    const md5 = createHash('md5').update(data);
    const md5Hex = md5.copy().digest('hex');
    try {
      const out = await this.send((abortSignal) =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: data,
            ContentLength: data.length,
            ContentType: contentTypeOfKey(key),
            CacheControl: objectCacheControl(options.expiresAt),
            ContentMD5: md5.digest('base64'),
          }),
          { abortSignal },
        ),
      );
      // A single-part PUT's ETag is the MD5 of what the store kept (except with SSE-KMS, whose ETag is opaque):
      // checked too, for stores that don't verify Content-MD5 (s3rver doesn't).
      const etag = out.ETag?.replace(/"/g, '').toLowerCase();
      if (etag && /^[0-9a-f]{32}$/.test(etag) && etag !== md5Hex) {
        throw new Error(`The store kept other bytes than were sent (ETag ${etag}, MD5 ${md5Hex}).`);
      }
    } catch (err) {
      // A write whose answer was lost (timeout, cut connection) may still have landed: take it back, in the
      // background (the store may be down). What this misses has no row, so the janitor removes it.
      void this.send((abortSignal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }),
      ).catch(() => undefined);
      throw new AppError('storage_failed', undefined, { cause: err });
    }
  }

  async get(key: string, range?: { start: number; end: number }): Promise<Readable | null> {
    const Key = this.objectKey(key);
    try {
      const out = await this.send((abortSignal) =>
        this.client.send(
          new GetObjectCommand({
            Bucket: this.bucket,
            Key,
            Range: range ? `bytes=${range.start}-${range.end}` : undefined,
          }),
          { abortSignal },
        ),
      );
      return out.Body as Readable;
    } catch (err) {
      if (isMissing(err)) {
        return null;
      }
      throw new AppError('unavailable', 'The image store is unavailable. Retry with backoff.', {
        cause: err,
      });
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.objectKey(key);
    try {
      // Idempotent in S3: deleting a missing key succeeds.
      await this.send((abortSignal) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }),
      );
    } catch (err) {
      throw new AppError('storage_failed', undefined, { cause: err });
    }
  }

  /** Every key under the prefix, a ListObjectsV2 page at a time (continuation tokens); foreign names skipped. */
  async *list(): AsyncIterable<{ key: string; modifiedAt: Date }> {
    let token: string | undefined;
    do {
      const page = await this.send((abortSignal) =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix || undefined,
            ContinuationToken: token,
            MaxKeys: this.listPageSize,
          }),
          { abortSignal },
        ),
      ).catch((err: unknown) => {
        throw new AppError('unavailable', 'The image store is unavailable. Retry with backoff.', {
          cause: err,
        });
      });
      for (const object of page.Contents ?? []) {
        const key = object.Key?.slice(this.prefix.length) ?? '';
        // Only names this service writes: never another application's objects in a shared bucket or prefix.
        if (object.Key?.startsWith(this.prefix) && SAFE_KEY.test(key) && !key.startsWith('.')) {
          yield { key, modifiedAt: object.LastModified ?? new Date(0) };
        }
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** A PUT is atomic in S3: there are no temp objects to remove. */
  removeTempsBefore(): Promise<number> {
    return Promise.resolve(0);
  }

  /** The bucket exists and these credentials reach it (HeadBucket). */
  async healthy(): Promise<boolean> {
    return (await this.unhealthyBecause()) === null;
  }

  /** HeadBucket's failure as the store named it (NoSuchBucket, 403 for wrong keys, ECONNREFUSED, a timeout). */
  override async unhealthyBecause(): Promise<string | null> {
    try {
      await this.send((abortSignal) =>
        this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal }),
      );
      return null;
    } catch (err) {
      return storeErrorName(err);
    }
  }

  /** Frees the connection pool (Nest calls it on shutdown). */
  onModuleDestroy(): void {
    this.client.destroy();
  }

  /** Runs one SDK call with S3_TIMEOUT_MS as its deadline, retries included; the timer stops once it answers. */
  private async send<T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    try {
      return await call(controller.signal);
    } finally {
      clearTimeout(timer);
    }
  }

  private objectKey(key: string): string {
    if (!SAFE_KEY.test(key) || key.startsWith('.')) {
      throw new AppError('storage_failed', 'Invalid storage key.');
    }
    return `${this.prefix}${key}`;
  }
}

function isMissing(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  // A missing bucket is a configuration fault (unavailable), not a missing image.
  return e.name === 'NoSuchKey' || (e.$metadata?.httpStatusCode === 404 && e.name !== 'NoSuchBucket');
}

/**
 * An S3 call's failure in a few words for an operator: the store's error code and HTTP status, a socket's error code,
 * or an aborted deadline. Never the request (it holds the signed URL).
 */
export function storeErrorName(err: unknown): string {
  const e = err as { name?: string; code?: string; $metadata?: { httpStatusCode?: number } };
  const status = e?.$metadata?.httpStatusCode;
  const name = e?.code ?? e?.name ?? 'Error';
  if (name === 'AbortError') {
    return 'no answer within S3_TIMEOUT_MS';
  }
  // HeadBucket has no body: a wrong key pair is only "403", a missing bucket "404" (the SDK calls both by number).
  return status && !/^\d+$/.test(name) ? `${name}, HTTP ${status}` : status ? `HTTP ${status}` : name;
}
