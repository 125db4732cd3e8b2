import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jpeg } from '../fixtures/sample-images';
import { bearer, makeKey } from '../setup/factories';
import { freePort } from '../setup/private-servers';
import { createTestApp, type TestApp } from '../setup/test-app';
import { waitFor } from '../setup/wait';

/** nginx as README "nginx in front" has it: the documented deploy/nginx/fixitfy-upload.conf, run as is. */
const CONF = join(__dirname, '../../deploy/nginx/fixitfy-upload.conf');

function nginxBinary(): string {
  const candidates = [process.env.NGINX_BIN, '/usr/sbin/nginx', '/usr/local/sbin/nginx', '/usr/bin/nginx'];
  const found = candidates.find((c): c is string => !!c && existsSync(c));
  if (!found) {
    throw new Error(
      'nginx is not installed: run `apt-get install -y nginx` (or set NGINX_BIN to its binary).',
    );
  }
  return found;
}

describe('nginx in front, X-Accel-Redirect (e2e)', () => {
  let t: TestApp;
  let nginx: ChildProcess;
  let prefix: string;
  let base: string;
  let token: string;

  beforeAll(async () => {
    const bin = nginxBinary();
    t = await createTestApp({ env: { ACCEL_REDIRECT_PREFIX: '/_fxf_storage/', TRUST_PROXY: 'true' } });
    token = (await makeKey(t)).token;
    const appPort = (t.app.getHttpServer().address() as AddressInfo).port;
    const port = await freePort();
    prefix = mkdtempSync(join(tmpdir(), 'fxf-nginx-'));
    mkdirSync(join(prefix, 'logs'));
    mkdirSync(join(prefix, 'tmp'));
    const server = readFileSync(CONF, 'utf8')
      .replace('server 127.0.0.1:3000;', `server 127.0.0.1:${appPort};`)
      .replace('listen 80;', `listen 127.0.0.1:${port};`)
      .replace('alias /var/lib/fixitfy/images/;', `alias ${t.config.storageDir}/;`);
    const tmp = join(prefix, 'tmp');
    writeFileSync(
      join(prefix, 'nginx.conf'),
      `daemon off;
${process.getuid?.() === 0 ? 'user root root;' : ''}
worker_processes 1;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${tmp}/body; proxy_temp_path ${tmp}/proxy; fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi; scgi_temp_path ${tmp}/scgi;
${server}
}
`,
    );
    const check = spawnSync(
      bin,
      ['-t', '-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs', 'error.log')],
      {
        encoding: 'utf8',
      },
    );
    if (check.status !== 0) {
      throw new Error(`nginx refused the documented config: ${check.stderr}`);
    }
    nginx = spawn(
      bin,
      ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs', 'error.log')],
      {
        stdio: 'ignore',
      },
    );
    base = `http://127.0.0.1:${port}`;
    await waitFor('nginx', async () => (await fetch(`${base}/healthz`)).ok);
  });
  afterAll(async () => {
    if (nginx && nginx.exitCode === null) {
      await new Promise<void>((resolve) => {
        nginx.once('exit', () => resolve());
        nginx.kill('SIGTERM');
      });
    }
    await t?.close();
    if (prefix) {
      rmSync(prefix, { recursive: true, force: true });
    }
  });

  const upload = async (seed: number): Promise<{ filename: string; bytes: Buffer }> => {
    // Uploads go through nginx too (multipart via supertest would bypass it): build the body by hand.
    const image = await jpeg(seed, 64, 48);
    const boundary = `----fxf${seed}`;
    const body = Buffer.concat([
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
      ),
      image,
      Buffer.from(`\r\n--${boundary}--\r\n`),
    ]);
    const up = await fetch(`${base}/api/v1/upload`, {
      method: 'POST',
      headers: {
        Authorization: bearer(token)[1],
        'Content-Type': `multipart/form-data; boundary=${boundary}`,
      },
      body,
    });
    expect(up.status).toBe(200);
    const json = (await up.json()) as { filename: string };
    // The stored bytes, from the disk: the app itself answers a full GET with X-Accel-Redirect and no body.
    const direct = await t.http.get(`/images/${json.filename}`).expect(200);
    expect(direct.headers['x-accel-redirect']).toBe(
      `/_fxf_storage/${json.filename.slice(8, 10)}/${json.filename}`,
    );
    // The next one is the fast path's (this instance holds the row now): the same answer, Content-Length 0 once.
    const again = await t.http.get(`/images/${json.filename}`).expect(200);
    const { date: _d1, 'x-request-id': _r1, ...slowHeaders } = direct.headers;
    const { date: _d2, 'x-request-id': _r2, ...fastHeaders } = again.headers;
    expect(fastHeaders).toEqual(slowHeaders);
    expect(fastHeaders['content-length']).toBe('0');
    const bytes = readFileSync(join(t.config.storageDir, json.filename.slice(8, 10), json.filename));
    return { filename: json.filename, bytes };
  };

  it('should send the stored bytes from nginx with every header the app sets, and no X-Accel-Redirect', async () => {
    const { filename, bytes } = await upload(1);
    for (let round = 0; round < 2; round++) {
      // Round 0 is the app's slow path (cache miss), round 1 its fast path: both hand the file to nginx.
      const res = await fetch(`${base}/images/${filename}`, { headers: { 'X-Request-Id': `ngx-${round}` } });
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status).toBe(200);
      expect(Buffer.compare(body, bytes)).toBe(0);
      expect(res.headers.get('etag')).toBe(`"${createHash('sha256').update(bytes).digest('hex')}"`);
      expect(res.headers.get('content-type')).toBe('image/jpeg');
      expect(res.headers.get('content-length')).toBe(String(bytes.length));
      expect(res.headers.get('cache-control')).toBe('public, max-age=86400');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-security-policy')).toBe(
        "default-src 'none'; style-src 'unsafe-inline'; sandbox",
      );
      expect(res.headers.get('accept-ranges')).toBe('bytes');
      expect(res.headers.get('last-modified')).toMatch(/GMT$/);
      expect(res.headers.get('x-request-id')).toBe(`ngx-${round}`);
      expect(res.headers.get('x-accel-redirect')).toBeNull();
    }
  });

  it('should keep 304, HEAD, Range/206 and 416 (answered by the app) through nginx', async () => {
    const { filename, bytes } = await upload(2);
    const etag = `"${createHash('sha256').update(bytes).digest('hex')}"`;
    const notModified = await fetch(`${base}/images/${filename}`, { headers: { 'If-None-Match': etag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get('etag')).toBe(etag);
    const head = await fetch(`${base}/images/${filename}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(bytes.length));
    const part = await fetch(`${base}/images/${filename}`, { headers: { Range: 'bytes=2-11' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 2-11/${bytes.length}`);
    expect(Buffer.compare(Buffer.from(await part.arrayBuffer()), bytes.subarray(2, 12))).toBe(0);
    const past = await fetch(`${base}/images/${filename}`, { headers: { Range: `bytes=${bytes.length}-` } });
    expect(past.status).toBe(416);
    expect(((await past.json()) as { code: string }).code).toBe('range_not_satisfiable');
  });

  it('should serve a variant through nginx with Vary: Accept, and 404 once the upload is deleted', async () => {
    const { filename } = await upload(3);
    const variant = await fetch(`${base}/images/${filename}?w=64&format=auto`, {
      headers: { Accept: 'image/webp' },
    });
    expect(variant.status).toBe(200);
    expect(variant.headers.get('content-type')).toBe('image/webp');
    expect(variant.headers.get('vary')).toBe('Accept');
    const again = await fetch(`${base}/images/${filename}?w=64&format=auto`, {
      headers: { Accept: 'image/webp' },
    });
    expect(
      Buffer.from(await again.arrayBuffer())
        .subarray(8, 12)
        .toString(),
    ).toBe('WEBP');
    await t.http
      .delete(`/api/v1/uploads/${filename}`)
      .set(...bearer(token))
      .expect(200);
    for (const path of [`/images/${filename}`, `/images/${filename}?w=64&format=auto`]) {
      const gone = await fetch(`${base}${path}`);
      expect(gone.status).toBe(404);
      expect(gone.headers.get('cache-control')).toBe('no-store');
      expect(((await gone.json()) as { code: string }).code).toBe('not_found');
    }
  });

  it("should pass an expiring upload's capped Cache-Control through to the client, original and variant", async () => {
    // API.md Part 3: an expired upload answers 404 everywhere at its time. nginx here has no proxy_cache and keeps
    // the app's Cache-Control on X-Accel-Redirect answers, so no browser or CDN behind it keeps the image longer.
    const up = await t.http
      .post('/api/v1/upload')
      .set(...bearer(token))
      .field('expires_in', '60')
      .attach('file', await jpeg(5, 64, 48), 'a.jpg')
      .expect(200);
    const filename = up.body.filename as string;
    for (const path of [`/images/${filename}`, `/images/${filename}?w=64&format=webp`]) {
      for (const headers of [{}, {}, { Range: 'bytes=0-9' }] as Record<string, string>[]) {
        // The first GET of each path is the app's slow path, the next ones its fast path.
        const res = await fetch(`${base}${path}`, { headers });
        expect([path, res.status]).toEqual([path, 'Range' in headers ? 206 : 200]);
        const maxAge = /^public, max-age=(\d+)$/.exec(res.headers.get('cache-control') ?? '');
        expect([path, Number(maxAge?.[1]) <= 60 && Number(maxAge?.[1]) >= 45]).toEqual([path, true]);
        expect(res.headers.get('x-accel-redirect')).toBeNull();
        await res.arrayBuffer();
      }
    }
  });

  it('should never serve the storage location to a client directly', async () => {
    const { filename } = await upload(4);
    const direct = await fetch(`${base}/_fxf_storage/${filename.slice(8, 10)}/${filename}`);
    expect(direct.status).not.toBe(200);
  });
});
