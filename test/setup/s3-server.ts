import S3rver from '@20minutes/s3rver';
import crypto, { randomBytes } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Config } from '../../src/config/app-config';
import { testAppDefaults } from './test-app';

/** s3rver's fixed credentials (it checks signatures with them). */
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';
const OBJECT_SUFFIX = '._S3rver_object';

/**
 * s3rver makes ListObjectsV2 continuation tokens with single DES, which OpenSSL 3 (Node 17+) only has in its legacy
 * provider: every paged listing would answer 500. Triple DES with the key three times is the same cipher and is in
 * the default provider. Patched once, in the test process only (nothing else here asks for `des`).
 */
function desForS3rver(): void {
  const mark = crypto as unknown as { fxfDesPatched?: boolean };
  if (mark.fxfDesPatched) {
    return;
  }
  mark.fxfDesPatched = true;
  const swap = (algorithm: string, key: crypto.CipherKey): [string, crypto.CipherKey] =>
    algorithm === 'des'
      ? ['des-ede3-cbc', Buffer.concat([key as Buffer, key as Buffer, key as Buffer])]
      : [algorithm, key];
  const cipher = crypto.createCipheriv.bind(crypto);
  const decipher = crypto.createDecipheriv.bind(crypto);
  // Every other argument passes through untouched: dropping `options` (e.g. GCM's authTagLength) would weaken
  // every later cipher in this worker process, the app's SecretBox included.
  (crypto as { createCipheriv: unknown }).createCipheriv = (
    algorithm: string,
    key: crypto.CipherKey,
    iv: Buffer,
    ...rest: unknown[]
  ) => (cipher as (...args: unknown[]) => unknown)(...swap(algorithm, key), iv, ...rest);
  (crypto as { createDecipheriv: unknown }).createDecipheriv = (
    algorithm: string,
    key: crypto.CipherKey,
    iv: Buffer,
    ...rest: unknown[]
  ) => (decipher as (...args: unknown[]) => unknown)(...swap(algorithm, key), iv, ...rest);
}

/** Directories of the running test S3 servers by endpoint, so `storedFiles()` can look behind one. */
const directories = new Map<string, string>();

/**
 * A real S3-compatible server (s3rver) in this process over HTTP on a free port, with one bucket; each app or
 * driver gets its own prefix in it. What the tests and helper 7's scale-out test run the service against:
 *
 *   const s3 = await TestS3.start();
 *   const t = await createTestApp({ env: s3.env() });   // STORAGE_DRIVER=s3 and the S3_* settings, a fresh prefix
 *   …
 *   await s3.close();
 */
export class TestS3 {
  readonly bucket = 'fxf-test';

  private constructor(
    private readonly server: S3rver,
    readonly port: number,
    readonly directory: string,
  ) {}

  static async start(port = 0): Promise<TestS3> {
    const directory = mkdtempSync(join(tmpdir(), 'fxf-s3rver-'));
    const server = new S3rver({
      port,
      address: '127.0.0.1',
      silent: process.env.S3RVER_LOG !== '1',
      directory,
      configureBuckets: [{ name: 'fxf-test', configs: [] }],
    });
    signBucketPathsAsSent(server);
    desForS3rver();
    rangesEndingAtZero(server);
    const address = await server.run();
    const s3 = new TestS3(server, address.port, directory);
    directories.set(s3.endpoint, directory);
    return s3;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** A prefix no other app or driver in this server uses. */
  static freshPrefix(): string {
    return `t-${randomBytes(6).toString('hex')}/`;
  }

  /** The service's settings for this server (as an operator sets them); `endpoint` to go through a proxy. */
  env(options: { prefix?: string; endpoint?: string; timeoutMs?: number } = {}): Record<string, string> {
    return {
      STORAGE_DRIVER: 's3',
      S3_ENDPOINT: options.endpoint ?? this.endpoint,
      S3_REGION: 'us-east-1',
      S3_BUCKET: this.bucket,
      S3_PREFIX: options.prefix ?? TestS3.freshPrefix(),
      S3_ACCESS_KEY_ID: ACCESS_KEY,
      S3_SECRET_ACCESS_KEY: SECRET_KEY,
      S3_FORCE_PATH_STYLE: 'true',
      S3_TIMEOUT_MS: String(options.timeoutMs ?? 10_000),
    };
  }

  /** The same as an S3Config, for a driver built directly. */
  config(
    options: { prefix?: string; endpoint?: string; timeoutMs?: number; maxAttempts?: number } = {},
  ): S3Config {
    return {
      endpoint: options.endpoint ?? this.endpoint,
      region: 'us-east-1',
      bucket: this.bucket,
      prefix: options.prefix ?? TestS3.freshPrefix(),
      accessKeyId: ACCESS_KEY,
      secretAccessKey: SECRET_KEY,
      forcePathStyle: true,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxAttempts: options.maxAttempts ?? 3,
    };
  }

  async close(): Promise<void> {
    directories.delete(this.endpoint);
    await this.server.close();
    rmSync(this.directory, { recursive: true, force: true });
  }
}

/**
 * s3rver signs a bucket-level request (HeadBucket, ListObjectsV2) over `/bucket`, while the SDK sends and signs
 * `/bucket/` (as S3 does): every such request would be refused with SignatureDoesNotMatch. Marking the request as
 * virtual-host style with the mount path `/` makes s3rver's canonical path `/bucket/`, the one the SDK signed; the
 * signature is still checked. Runs just before s3rver's router (after its own vhost middleware).
 */
function signBucketPathsAsSent(server: S3rver): void {
  const app = server as unknown as { middleware: ((ctx: any, next: () => Promise<void>) => Promise<void>)[] };
  app.middleware.splice(app.middleware.length - 1, 0, (ctx, next) => {
    if (/^\/[^/]+\/$/.test(ctx.path as string) && !ctx.mountPath) {
      ctx.state.vhost = true;
      ctx.mountPath = '/';
    }
    return next();
  });
}

interface S3rverStore {
  getResourcePath(bucket: string, key: string, resource: string): string;
  getObject(
    bucket: string,
    key: string,
    options?: { start?: number; end?: number },
  ): Promise<{
    content: NodeJS.ReadableStream & { destroy(): void };
    range?: { start: number; end: number };
  } | null>;
}

/**
 * s3rver reads `Range: bytes=0-0` (the first byte) as the whole object (`end || Infinity`); S3 answers one byte.
 * This serves that one byte, as S3 does.
 */
function rangesEndingAtZero(server: S3rver): void {
  const store = (server as unknown as { store: S3rverStore }).store;
  const getObject = store.getObject.bind(store);
  store.getObject = async (bucket, key, options) => {
    const object = await getObject(bucket, key, options);
    if (object?.content && object.range && options?.end === 0) {
      object.content.destroy();
      object.content = createReadStream(store.getResourcePath(bucket, key, 'object'), { start: 0, end: 0 });
      object.range = { start: 0, end: 0 };
    }
    return object;
  };
}

/** The keys s3rver holds under `prefix` of the bucket at `endpoint` (read from its directory, synchronously). */
export function s3StoredKeys(endpoint: string, bucket: string, prefix: string): string[] {
  const directory = directories.get(endpoint.replace(/\/+$/, ''));
  if (!directory) {
    throw new Error(
      `No test S3 server at ${endpoint} (tests going through a proxy: look at the server directly).`,
    );
  }
  const root = join(directory, bucket, prefix);
  if (!existsSync(root)) {
    return [];
  }
  return readdirSync(root)
    .filter((name) => name.endsWith(OBJECT_SUFFIX))
    .map((name) => name.slice(0, -OBJECT_SUFFIX.length));
}

export type FaultMode = 'pass' | 'fail' | 'hang' | 'short' | 'cut';

/**
 * A small HTTP proxy in front of the test S3 server that a test turns into a failing store: per request, `rule`
 * says `pass` (forward), `fail` (answer 500 InternalError, as S3 does), `hang` (read the request, never answer),
 * `short` (forward, but a successful answer's body loses its second half, Content-Length to match: a clean answer
 * with fewer bytes than the object has) or `cut` (forward, send a successful answer's headers and the first half of
 * its body, then drop the connection). Real HTTP faults, on the driver's real connection pool; `close()` cuts
 * everything.
 */
export class S3FaultProxy {
  rule: (req: IncomingMessage) => FaultMode = () => 'pass';
  /** The next PUT reaches the store with one byte of its body flipped (headers unchanged): bytes hurt in transit. */
  corruptNextPut = false;
  /** Every forwarded request waits this long first (a slow store). */
  delayMs = 0;
  /** Requests seen, by method (to check a failure went through the store, not around it). */
  readonly seen: string[] = [];
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(s3: TestS3): Promise<S3FaultProxy> {
    const targetPort = s3.port;
    const ref: { proxy?: S3FaultProxy } = {};
    const server = createServer((req, res) => {
      const proxy = ref.proxy as S3FaultProxy;
      proxy.seen.push(req.method ?? '');
      const mode = proxy.rule(req);
      if (mode === 'hang') {
        req.resume();
        return;
      }
      if (mode === 'fail') {
        req.resume();
        req.on('end', () => {
          res.writeHead(500, { 'Content-Type': 'application/xml' });
          res.end(
            '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>',
          );
        });
        return;
      }
      if (proxy.delayMs > 0) {
        req.pause();
        setTimeout(() => forward(proxy, req, res, mode), proxy.delayMs);
        return;
      }
      forward(proxy, req, res, mode);
    });
    const forward = (
      proxy: S3FaultProxy,
      req: IncomingMessage,
      res: ServerResponse,
      mode: 'pass' | 'short' | 'cut',
    ): void => {
      const corrupt = req.method === 'PUT' && proxy.corruptNextPut;
      if (corrupt) {
        proxy.corruptNextPut = false;
      }
      const upstream = request(
        { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          const status = answer.statusCode ?? 502;
          if (mode === 'pass' || (status !== 200 && status !== 206)) {
            res.writeHead(status, answer.headers);
            answer.pipe(res);
            return;
          }
          truncate(answer, res, mode);
        },
      );
      upstream.on('error', () => res.destroy());
      if (!corrupt) {
        req.pipe(upstream);
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        body[body.length >> 1] ^= 0xff;
        upstream.end(body);
      });
    };
    /** The store's whole answer, then half its body: as a clean shorter answer (`short`) or cut off (`cut`). */
    const truncate = (answer: IncomingMessage, res: ServerResponse, mode: 'short' | 'cut'): void => {
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('error', () => res.destroy());
      answer.on('end', () => {
        const body = Buffer.concat(chunks);
        const half = body.subarray(0, body.length >> 1);
        if (mode === 'short') {
          res.writeHead(answer.statusCode ?? 502, {
            ...answer.headers,
            'content-length': String(half.length),
          });
          res.end(half);
          return;
        }
        // The original Content-Length promises the whole body; the connection goes once half of it is sent.
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        res.write(half, () => res.destroy());
      });
    };
    server.on('connection', (socket: Socket) => {
      ref.proxy?.sockets.add(socket);
      socket.on('close', () => ref.proxy?.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    ref.proxy = new S3FaultProxy(server, (server.address() as AddressInfo).port);
    // storedFiles() of an app behind the proxy looks at the server behind it.
    directories.set(ref.proxy.endpoint, s3.directory);
    return ref.proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Every method (`PUT`, `GET`, …) in `methods` gets `mode`; the rest pass. */
  on(methods: string[], mode: FaultMode): void {
    this.rule = (req) => (methods.includes(req.method ?? '') ? mode : 'pass');
  }

  restore(): void {
    this.rule = () => 'pass';
  }

  async close(): Promise<void> {
    directories.delete(this.endpoint);
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Runs every test app of the calling jest file on a test S3 server (STORAGE_DRIVER=s3, a fresh prefix per app):
 * call it at the top of a spec, before the `describe`s it should cover (or before `require`-ing a spec file to run
 * its scenarios on S3). Returns the server once started (inside tests).
 */
export function runOnS3(): { server: () => TestS3 } {
  let s3: TestS3 | null = null;
  beforeAll(async () => {
    s3 = await TestS3.start();
    const server = s3;
    testAppDefaults.env = () => server.env();
  });
  afterAll(async () => {
    testAppDefaults.env = null;
    await s3?.close();
  });
  return {
    server: () => {
      if (!s3) {
        throw new Error('The test S3 server is not started yet (use it inside tests or hooks).');
      }
      return s3;
    },
  };
}
