import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { png } from '../fixtures/sample-images';
import { bearer, login, makeKey, makeUser, type TestSession } from '../setup/factories';
import { appRoutes } from '../setup/routes';
import { createTestApp, type TestApp } from '../setup/test-app';
import { Receiver } from './webhooks-receiver';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

interface LintProblem {
  ruleId: string;
  severity: 'error' | 'warn';
  message: string;
  location: { pointer?: string }[];
}

/** Runs `redocly lint` (its recommended rules, the CLI's default) on the document; no network, no telemetry. */
async function redoclyLint(
  doc: unknown,
): Promise<{ totals: { errors: number; warnings: number }; problems: LintProblem[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'openapi-lint-'));
  try {
    const file = join(dir, 'openapi.json');
    await writeFile(file, JSON.stringify(doc));
    const bin = join(__dirname, '..', '..', 'node_modules', '.bin', 'redocly');
    const { stdout } = await promisify(execFile)(bin, ['lint', file, '--format=json'], {
      cwd: dir,
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((e: { stdout?: string }) => ({ stdout: e.stdout ?? '' }));
    return JSON.parse(stdout.slice(stdout.indexOf('{')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe('OpenAPI document (e2e)', () => {
  let t: TestApp;
  let doc: any;

  beforeAll(async () => {
    t = await createTestApp();
    doc = (await t.http.get('/docs/openapi.json').expect(200)).body;
  });
  afterAll(() => t.close());

  const operations = (): { method: string; path: string; op: any }[] =>
    Object.entries(doc.paths).flatMap(([path, item]: [string, any]) =>
      METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method] })),
    );

  it('should describe every route the app serves', () => {
    // The website's pages and assets (src/modules/web) are not the API: excluded from the document on purpose.
    const routes = appRoutes(t.app).filter((r) => r.documented);
    expect(routes.length).toBeGreaterThan(15);
    const missing = routes.filter((r) => !doc.paths[r.path]?.[r.method]).map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
  });

  it('should mark every route @Auth or @Public (deny by default)', () => {
    const unmarked = appRoutes(t.app).filter((r) => !r.authMarked);
    expect(unmarked).toEqual([]);
  });

  it('should declare the bearer (fxf_, ut_) and cookie security schemes and the error envelope', () => {
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'session', 'uploadToken']);
    expect(doc.components.schemas.ErrorResponse.properties.code.enum).toContain('nsfw_rejected');
    expect(doc.components.schemas.ErrorResponse.properties.ok.type).toBe('boolean');
    const upload = doc.paths['/api/v1/upload'].post;
    expect(Object.keys(upload.responses)).toEqual(
      expect.arrayContaining(['200', '400', '401', '403', '413', '415', '429', '500']),
    );
  });

  it("should document a 400's details as the service sends them: a field and a message each", async () => {
    const session = await login(t, await makeUser(t));
    const res = await t.http
      .post('/api/v1/keys')
      .set('Cookie', session.cookie)
      .set('X-CSRF-Token', session.csrf)
      .send({ name: 'x', scopes: ['nope'], extra: 1 })
      .expect(400);
    expect(res.body.details.length).toBeGreaterThanOrEqual(2);
    const schema = doc.components.schemas.ErrorResponse;
    expect(mismatches(doc, schema, res.body, '400')).toEqual([]);
    const item = resolve(doc, schema.properties.details.items);
    expect(item.required).toEqual(['field', 'message']);
    expect(Object.keys(res.body.details[0]).sort()).toEqual(Object.keys(item.properties).sort());
  });

  it('should lint clean with @redocly/cli recommended rules: 0 errors, 0 warnings', async () => {
    const result = await redoclyLint(doc);
    const problems = result.problems.map(
      (p) => `${p.severity} ${p.ruleId} ${p.location[0]?.pointer}: ${p.message}`,
    );
    expect(problems).toEqual([]);
    expect(result.totals).toMatchObject({ errors: 0, warnings: 0 });
  }, 60000);

  it('should catch a broken document (the lint really runs)', async () => {
    const broken = structuredClone(doc);
    broken.servers = [];
    delete broken.paths['/healthz'].get.security;
    const result = await redoclyLint(broken);
    expect(result.problems.map((p) => p.ruleId)).toEqual(
      expect.arrayContaining(['no-empty-servers', 'security-defined']),
    );
  }, 60000);

  it('should name every operation with a unique camelCase operationId (not Nest’s Controller_method)', () => {
    const ids = operations().map(({ op }) => op.operationId);
    expect(ids.filter((id) => typeof id !== 'string' || !/^[a-z][a-zA-Z0-9]*$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    const byRoute = Object.fromEntries(
      operations().map(({ method, path, op }) => [`${method} ${path}`, op.operationId]),
    );
    expect(byRoute).toMatchObject({
      'get /api/v1/uploads': 'listUploads',
      'get /api/v1/uploads/{filename}': 'getUpload',
      'delete /api/v1/uploads/{filename}': 'deleteUpload',
      'post /api/v1/upload': 'upload',
      'post /api/v1/keys': 'createKey',
      'get /api/v1/me': 'getMe',
      'post /api/v1/upload-token': 'createUploadToken',
    });
  });

  it('should ask for X-CSRF-Token only on state-changing session operations, and say public ones need nothing', () => {
    const csrf = (op: any) =>
      (op.parameters ?? []).some((p: any) => p.in === 'header' && p.name === 'X-CSRF-Token');
    const session = (op: any) => (op.security ?? []).some((s: any) => 'session' in s);
    // The ShareX file is a GET that makes a key: it needs the header too, and says so (required).
    const sharex = doc.paths['/api/v1/clients/sharex'].get;
    const wrong = operations()
      .filter(({ op }) => op !== sharex)
      .filter(({ method, op }) => csrf(op) !== (session(op) && !['get', 'head', 'options'].includes(method)))
      .map(({ method, path }) => `${method} ${path}`);
    expect(wrong).toEqual([]);
    expect(sharex.parameters).toContainEqual(
      expect.objectContaining({ in: 'header', name: 'X-CSRF-Token', required: true }),
    );
    expect(csrf(doc.paths['/api/v1/uploads/{filename}'].delete)).toBe(true);
    expect(csrf(doc.paths['/api/v1/uploads'].get)).toBe(false);
    expect(doc.paths['/healthz'].get.security).toEqual([]);
    expect(doc.paths['/api/delete/{token}'].get.security).toEqual([]);
    expect(doc.paths['/api/v1/uploads'].get.security).toEqual(
      expect.arrayContaining([{ apiKey: [] }, { session: [] }]),
    );
  });

  it('should give no optional query parameter an example and start optional form fields blank in Swagger UI', () => {
    // "Try it out" fills every field with its example: a past `before` listed nothing, and the upload form's two
    // expiry examples made every upload a 400. A form field without an example it fills with a sample ("string", or a
    // random match of its pattern) unless it has a default: '' is what a blank field sends, and means "not sent".
    const prefilled = operations().flatMap(({ method, path, op }) => {
      const form = resolve(doc, op.requestBody?.content?.['multipart/form-data']?.schema ?? {});
      return [
        ...(op.parameters ?? [])
          .filter(
            (p: any) => p.in === 'query' && !p.required && (p.example ?? p.schema?.example) !== undefined,
          )
          .map((p: any) => `${method} ${path} ?${p.name}`),
        ...Object.entries(form.properties ?? {})
          .filter(([name]) => !(form.required ?? []).includes(name))
          .filter(([, schema]: [string, any]) => schema.example !== undefined || schema.default !== '')
          .map(([name]) => `${method} ${path} form ${name}`),
      ];
    });
    expect(prefilled).toEqual([]);
    const upload = resolve(
      doc,
      doc.paths['/api/v1/upload'].post.requestBody.content['multipart/form-data'].schema,
    );
    expect(Object.keys(upload.properties).sort()).toEqual(['expires_at', 'expires_in', 'file', 'tags']);
  });

  it('should say null where the service sends it: nullable references and enums accept null', () => {
    const wrong: string[] = [];
    const schemas: Record<string, { properties?: Record<string, any> }> = doc.components.schemas;
    for (const [name, schema] of Object.entries(schemas)) {
      for (const [prop, p] of Object.entries(schema.properties ?? {})) {
        const ref = p.$ref ?? p.allOf?.[0]?.$ref;
        if ((p.nullable && ref) || (p.nullable && p.enum && !p.enum.includes(null))) {
          wrong.push(`${name}.${prop}`);
        }
      }
    }
    expect(wrong).toEqual([]);
    expect(doc.components.schemas.MeResponse.properties.key.anyOf).toEqual([
      { $ref: '#/components/schemas/MeKey' },
      { type: 'string', nullable: true, enum: [null] },
    ]);
    expect(doc.components.schemas.WebhookResponse.properties.disabled_reason.enum).toEqual([
      'owner',
      'failing',
      null,
    ]);
    expect(doc.components.securitySchemes.session.description).toMatch(/POST \/api\/v1\/auth\/login/);
  });

  it('should state the limits the service enforces on request bodies, so generated clients check them too', () => {
    const schemas = doc.components.schemas;
    for (const [dto, field] of [
      ['CreateKeyDto', 'scopes'],
      ['CreateWebhookDto', 'events'],
      ['UpdateWebhookDto', 'events'],
    ]) {
      expect({ dto, ...schemas[dto].properties[field] }).toMatchObject({
        dto,
        minItems: 1,
        uniqueItems: true,
      });
    }
    expect(schemas.CreateKeyDto.properties.default_expires_in).toMatchObject({
      type: 'integer',
      nullable: true,
    });
    expect(schemas.RegisterDto.properties.email).toMatchObject({ format: 'email', maxLength: 254 });
    expect(schemas.LoginDto.properties.email.maxLength).toBe(254);
    expect(schemas.LoginDto.properties.password.maxLength).toBe(200);
    // A quota of 1.5 files was valid against the document and a 400 from the service.
    expect(schemas.UpdateUserQuotaDto.properties.quota_bytes).toMatchObject({
      type: 'integer',
      nullable: true,
    });
    expect(schemas.UpdateUserQuotaDto.properties.quota_files).toMatchObject({
      type: 'integer',
      maximum: 2_147_483_647,
    });
  });

  it('should type no number `number`: every number the service takes or answers is a whole one', () => {
    const found: string[] = [];
    const walk = (node: unknown, at: string): void => {
      if (node && typeof node === 'object') {
        if ((node as { type?: unknown }).type === 'number') {
          found.push(at);
        }
        for (const [key, value] of Object.entries(node)) {
          walk(value, `${at}/${key}`);
        }
      }
    };
    walk(doc, '#');
    expect(found).toEqual([]);
    const images = doc.paths['/images/{filename}'].get.parameters;
    expect(images.find((p: any) => p.name === 'w').schema.type).toBe('integer');
  });

  it('should give every parameter a typed schema (Swagger UI and generated clients take anything from an empty one)', () => {
    const untyped = Object.entries<any>(doc.paths).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).flatMap((method) =>
        (item[method].parameters ?? [])
          .filter((p: any) => typeof p.schema?.type !== 'string')
          .map((p: any) => `${method} ${path} ${p.in} ${p.name}`),
      ),
    );
    expect(untyped).toEqual([]);
  });

  it('should point servers at PUBLIC_URL and use no JWT bearer format for the opaque tokens', () => {
    expect(doc.servers).toEqual([{ url: 'http://upload.test' }]);
    expect(doc.components.securitySchemes.apiKey.bearerFormat).not.toBe('JWT');
    expect(doc.components.securitySchemes.uploadToken.bearerFormat).not.toBe('JWT');
    expect(doc.info.license.name).toBe('MIT');
  });

  it('should answer the documented 400 on /healthz and /readyz for a body that is not JSON', async () => {
    for (const path of ['/healthz', '/readyz']) {
      expect(doc.paths[path].get.responses['400']).toBeDefined();
      const res = await t.http.get(path).set('Content-Type', 'application/json').send('{');
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ ok: false, code: 'bad_request' });
    }
  });

  it('should serve Swagger UI at /docs', async () => {
    const res = await t.http.get('/docs/').expect(200);
    expect(res.text).toContain('swagger');
  });
});

/** What API.md says a timestamp looks like: ISO-8601 UTC with milliseconds. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** `#/components/...` → the object it names. */
function resolve(doc: any, node: any): any {
  let out = node;
  while (out && typeof out.$ref === 'string') {
    out = out.$ref
      .slice(2)
      .split('/')
      .reduce((o: any, k: string) => o?.[k], doc);
  }
  return out;
}

/**
 * Where `value` (a real answer) disagrees with `schema`, as far as this document's schemas go: types, nullable,
 * enum, required and undocumented properties, anyOf, arrays. Stricter than a validator in two ways the document
 * promises: a whole number must be typed `integer` (the service answers no fractions), and a `…_at` timestamp must
 * say `format: date-time` (and be one).
 */
function mismatches(doc: any, node: any, value: unknown, at: string): string[] {
  const schema = resolve(doc, node);
  if (schema.allOf) {
    return schema.allOf.flatMap((branch: any) => mismatches(doc, branch, value, at));
  }
  if (schema.anyOf) {
    const each: string[][] = schema.anyOf.map((branch: any) => mismatches(doc, branch, value, at));
    if (each.some((problems) => problems.length === 0)) {
      return [];
    }
    // A value that is not null is told what its own branch says, not the `null` branch's "not in enum".
    const own = schema.anyOf.filter(
      (branch: any) => value === null || resolve(doc, branch).enum?.[0] !== null,
    );
    return own.length > 0 ? own.flatMap((branch: any) => mismatches(doc, branch, value, at)) : each.flat();
  }
  if (value === null) {
    return schema.nullable ? [] : [`${at}: null, not nullable`];
  }
  if (schema.enum && !schema.enum.includes(value)) {
    return [`${at}: ${JSON.stringify(value)} not in enum`];
  }
  const name = at.split('.').pop() ?? '';
  switch (schema.type) {
    case 'integer':
      return Number.isInteger(value) ? [] : [`${at}: ${JSON.stringify(value)} is not an integer`];
    case 'number':
      return typeof value !== 'number'
        ? [`${at}: not a number`]
        : Number.isInteger(value)
          ? [`${at}: the whole number ${value} is typed number, not integer`]
          : [];
    case 'boolean':
      return typeof value === 'boolean' ? [] : [`${at}: not a boolean`];
    case 'string': {
      if (typeof value !== 'string') {
        return [`${at}: not a string`];
      }
      if (schema.format === 'date-time') {
        return TIMESTAMP.test(value) ? [] : [`${at}: ${value} is not an ISO timestamp`];
      }
      return /_at$/.test(name) ? [`${at}: a timestamp without format date-time`] : [];
    }
    case 'array':
      return Array.isArray(value)
        ? value.flatMap((item, i) => mismatches(doc, schema.items, item, `${at}[${i}]`))
        : [`${at}: not an array`];
    case 'object':
    case undefined: {
      if (typeof value !== 'object' || Array.isArray(value)) {
        return [`${at}: not an object`];
      }
      const record = value as Record<string, unknown>;
      if (!schema.properties) {
        return []; // a free-form object
      }
      const properties: Record<string, any> = schema.properties;
      return [
        ...(schema.required ?? [])
          .filter((key: string) => !(key in record))
          .map((key: string) => `${at}.${key}: required, missing`),
        ...Object.entries(record).flatMap(([key, v]) =>
          properties[key]
            ? mismatches(doc, properties[key], v, `${at}.${key}`)
            : schema.additionalProperties
              ? []
              : [`${at}.${key}: not in the schema`],
        ),
      ];
    }
    default:
      return [`${at}: unknown type ${schema.type}`];
  }
}

/** Whether the document lets a client send `value`: the string and array keywords the tag fields use. */
function allows(schema: any, value: unknown): boolean {
  if (Array.isArray(value)) {
    return (
      value.length >= (schema.minItems ?? 0) &&
      value.length <= (schema.maxItems ?? Infinity) &&
      value.every((item) => allows(schema.items, item))
    );
  }
  const text = String(value);
  return (
    text.length >= (schema.minLength ?? 0) &&
    text.length <= (schema.maxLength ?? Infinity) &&
    (schema.pattern === undefined || new RegExp(schema.pattern).test(text))
  );
}

/** What `call` sent, to send it again. */
interface CallInit {
  params?: Record<string, string>;
  query?: string;
  key?: string;
  session?: TestSession;
  body?: object | string;
  file?: Buffer;
  fields?: Record<string, string>;
  headers?: Record<string, string>;
}

interface RealAnswer {
  method: string;
  /** The document's path template. */
  path: string;
  init: CallInit;
  status: number;
  headers: Record<string, string>;
  body: unknown;
  json: boolean;
}

describe('OpenAPI document against real answers (e2e)', () => {
  let t: TestApp;
  let doc: any;
  let receiver: Receiver;
  const answers: RealAnswer[] = [];
  /** GET answers with an ETag, and the answer to the same request sent again with it as If-None-Match. */
  const revalidations: { first: RealAnswer; again: RealAnswer }[] = [];
  /** The direct links document their own conditional answers; the ShareX file is a new key each time (never 304). */
  const isConditional = (path: string): boolean =>
    !path.startsWith('/images/') && path !== '/api/v1/clients/sharex';

  /** Sends one request to `path` (a template of the document) with `params` filled in, and keeps the answer. */
  async function call(
    method: 'get' | 'head' | 'post' | 'patch' | 'delete',
    path: string,
    init: CallInit = {},
  ): Promise<any> {
    const url = path.replace(/\{(\w+)\}/g, (_m, name: string) =>
      encodeURIComponent(init.params?.[name] ?? ''),
    );
    let req = t.http[method](init.query ? `${url}?${init.query}` : url);
    if (init.key) {
      req = req.set(...bearer(init.key));
    }
    if (init.session) {
      req = req.set('Cookie', init.session.cookie).set('X-CSRF-Token', init.session.csrf);
    }
    req = req.set(init.headers ?? {});
    if (init.file) {
      req = req.attach('file', init.file, 'a.png');
      for (const [name, value] of Object.entries(init.fields ?? {})) {
        req = req.field(name, value);
      }
    } else if (init.body !== undefined) {
      req = req.send(init.body);
    }
    const res = await req;
    answers.push({
      method,
      path,
      init,
      status: res.status,
      headers: res.headers as Record<string, string>,
      body: res.body,
      json: /^application\/json/.test(String(res.headers['content-type'])),
    });
    // Each GET answer with an ETag is asked again with it at once (while its credentials still work): 304.
    if (
      method === 'get' &&
      res.status === 200 &&
      res.headers.etag &&
      isConditional(path) &&
      !init.headers?.['If-None-Match']
    ) {
      const first = answers.length - 1;
      await call(method, path, { ...init, headers: { ...init.headers, 'If-None-Match': res.headers.etag } });
      revalidations.push({ first: answers[first], again: answers[answers.length - 1] });
    }
    return res.body;
  }

  beforeAll(async () => {
    t = await createTestApp({ env: { ALLOW_PRIVATE_WEBHOOKS: 'true' } });
    doc = (await t.http.get('/docs/openapi.json').expect(200)).body;
    receiver = await Receiver.start();

    // Every documented operation answers at least once, with most of what its answers can hold (nulls and not).
    const { token: key, user } = await makeKey(t);
    const session = await login(t, user);
    const admin = await login(t, await makeUser(t, 'admin'));
    await call('get', '/healthz');
    await call('get', '/readyz');
    const email = `reg-${Date.now()}@example.com`;
    await call('post', '/api/v1/auth/register', { body: { email, password: 'correct horse battery' } });
    await call('post', '/api/v1/auth/login', { body: { email, password: 'correct horse battery' } });
    await call('get', '/api/v1/auth/session', { session });

    const created = await call('post', '/api/v1/keys', {
      session,
      body: { label: 'expiring', default_expires_in: 3600 },
    });
    const first = await call('post', '/api/v1/upload', { key, file: await png(1), fields: { tags: 'a,B' } });
    await call('post', '/api/v1/upload', { key, file: await png(1) }); // deduplicated
    const expiring = await call('post', '/api/v1/upload', { key: created.token, file: await png(2) });
    await call('post', '/api/v1/upload-token', { key, body: { ttl_seconds: 600, max_uploads: 2 } });
    await call('get', '/api/v1/uploads', { key, query: 'limit=1' });
    await call('get', '/api/v1/uploads', { key: created.token, query: 'tag=A' });
    await call('get', '/api/v1/uploads/{filename}', { key, params: { filename: first.filename } });
    await call('patch', '/api/v1/uploads/{filename}', {
      key,
      params: { filename: first.filename },
      body: { tags: ['logo'] },
    });
    await call('get', '/api/v1/uploads/by-hash/{sha256}', { key, params: { sha256: first.hash_sha256 } });
    await call('head', '/api/v1/uploads/by-hash/{sha256}', { key, params: { sha256: first.hash_sha256 } });
    await call('get', '/api/v1/me', { key });
    await call('get', '/api/v1/me', { session });
    await call('get', '/images/{filename}', { params: { filename: first.filename } });
    await call('head', '/images/{filename}', { params: { filename: first.filename } });
    await call('get', '/images/{filename}', { params: { filename: first.filename }, query: 'w=64' });
    await call('get', '/images/{filename}', {
      params: { filename: first.filename },
      headers: { Range: 'bytes=0-3' },
    });
    await call('delete', '/api/v1/keys/{id}', { session, params: { id: created.key.id } });
    await call('get', '/api/v1/keys', { session });
    await call('get', '/api/v1/clients/curl', { session });
    await call('get', '/api/v1/clients/sharex', { session, query: `key_id=${created.key.id}` });

    await call('get', '/api/v1/webhooks/secret', { session });
    await call('post', '/api/v1/webhooks/secret/rotate', { session });
    const hook = await call('post', '/api/v1/webhooks', { session, body: { url: receiver.url() } });
    const ping = await call('post', '/api/v1/webhooks/{id}/test', {
      session,
      params: { id: hook.webhook.id },
    });
    await call('post', '/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver', {
      session,
      params: { id: hook.webhook.id, delivery_id: ping.delivery.delivery_id },
    });
    await call('get', '/api/v1/webhooks/{id}/deliveries', { session, params: { id: hook.webhook.id } });
    await call('patch', '/api/v1/webhooks/{id}', {
      session,
      params: { id: hook.webhook.id },
      body: { enabled: false },
    });
    await call('get', '/api/v1/webhooks', { session });
    await call('delete', '/api/v1/webhooks/{id}', { session, params: { id: hook.webhook.id } });

    await call('patch', '/api/v1/admin/users/{id}', {
      session: admin,
      params: { id: user.id },
      body: { quota_bytes: 1_000_000, quota_files: null },
    });
    await call('post', '/api/v1/admin/users/{id}/ban', {
      session: admin,
      params: { id: user.id },
      body: { reason: 'x' },
    });
    await call('get', '/api/v1/admin/users', { session: admin, query: 'limit=100' });
    await call('post', '/api/v1/admin/users/{id}/unban', { session: admin, params: { id: user.id } });
    await call('get', '/api/v1/admin/uploads', { session: admin, query: `user=${user.id}` });
    await call('get', '/api/v1/admin/audit', { session: admin, query: 'limit=100' });
    await call('delete', '/api/v1/admin/uploads/{filename}', {
      session: admin,
      params: { filename: expiring.filename },
    });

    await call('delete', '/api/v1/uploads/{filename}', { key, params: { filename: first.filename } });
    const second = await call('post', '/api/v1/upload', { key, file: await png(3) });
    const token = String(second.delete_url).split('/').pop() ?? '';
    await call('get', '/api/delete/{token}', { params: { token } });
    await call('post', '/api/delete/{token}', { params: { token } });
    await call('delete', '/api/delete/{token}', { params: { token } }); // 404: used

    // Errors: a validation refusal, an unknown resource, and what any route answers.
    await call('get', '/api/v1/uploads', { key, query: 'limit=0' });
    await call('get', '/api/v1/uploads/{filename}', {
      key,
      params: { filename: 'FIXITFY-aaaaaaaaaaaa.png' },
    });
    await call('get', '/api/v1/keys');
    await call('post', '/api/v1/auth/password', {
      session: await login(t, user),
      body: { current_password: 'correct horse battery', new_password: 'another long passphrase' },
    });
    await call('post', '/api/v1/auth/logout', { session });
  }, 120_000);

  afterAll(async () => {
    await t.close();
    await receiver.close();
  });

  it('should document on every operation the errors any request can get: bad JSON, a body over 64 KB, big headers', async () => {
    const params = {
      filename: 'FIXITFY-aaaaaaaaaaaa.png',
      id: '00000000-0000-4000-8000-000000000000',
      delivery_id: '00000000-0000-4000-8000-000000000000',
      sha256: 'a'.repeat(64),
      token: 'a'.repeat(64),
    };
    const json = { 'Content-Type': 'application/json' };
    const seen: RealAnswer[] = [];
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const method of METHODS.filter((m) => item[m]) as (
        | 'get'
        | 'head'
        | 'post'
        | 'patch'
        | 'delete'
      )[]) {
        const from = answers.length;
        await call(method, path, { params, headers: { 'X-Padding': 'x'.repeat(20_000) } });
        if (method !== 'head') {
          // supertest sends no body with HEAD; the service answers a HEAD's body the same way (checked by hand).
          await call(method, path, { params, headers: json, body: '{"tags": [' });
          await call(method, path, { params, headers: json, body: { padding: 'x'.repeat(65 * 1024) } });
        }
        seen.push(...answers.slice(from));
      }
    }
    expect(seen.flatMap(problemsOf)).toEqual([]);
    // A HEAD answer has no body: its status is what it shows.
    const codes = seen.map(
      (a) => `${a.status} ${a.method === 'head' ? 'header_too_large' : (a.body as any).code}`,
    );
    expect(new Set(codes)).toEqual(new Set(['431 header_too_large', '400 bad_request', '413 too_large']));
    // What a request to no operation gets: the shared NotFound and MethodNotAllowed, which the info names.
    const responses = doc.components.responses;
    const unknown = await t.http.get('/api/v1/nothing-here');
    expect(unknown.status).toBe(404);
    expect(
      mismatches(doc, responses.NotFound.content['application/json'].schema, unknown.body, '404'),
    ).toEqual([]);
    const wrongMethod = await t.http.put('/api/v1/keys');
    expect({ status: wrongMethod.status, allow: wrongMethod.headers.allow }).toEqual({
      status: 405,
      allow: 'GET, HEAD, POST',
    });
    expect(responses.MethodNotAllowed.headers).toHaveProperty('Allow');
    expect(doc.info.description).toMatch(/404 `not_found`.*405 `method_not_allowed` with `Allow`/);
  });

  it('should declare X-Request-Id, once, on every response of every operation, as every answer carries it', () => {
    const header = doc.components.headers['X-Request-Id'];
    const undeclared = Object.entries(doc.paths).flatMap(([path, item]: [string, any]) =>
      METHODS.filter((m) => item[m]).flatMap((m) =>
        Object.entries(item[m].responses)
          .filter(([, r]) => resolve(doc, resolve(doc, r).headers?.['X-Request-Id']) !== header)
          .map(([status]) => `${m} ${path} ${status}`),
      ),
    );
    expect(undeclared).toEqual([]);
    const pattern = new RegExp(header.schema.pattern);
    expect(answers.length).toBeGreaterThan(100);
    expect(
      answers
        .filter((a) => !pattern.test(a.headers['x-request-id'] ?? ''))
        .map((a) => `${a.method} ${a.path} ${a.status}`),
    ).toEqual([]);
  });

  it('should have answered every documented operation', () => {
    const answered = new Set(answers.map((a) => `${a.method} ${a.path}`));
    const operations = Object.entries(doc.paths).flatMap(([path, item]: [string, any]) =>
      METHODS.filter((m) => item[m]).map((m) => `${m} ${path}`),
    );
    expect(operations.filter((op) => !answered.has(op))).toEqual([]);
  });

  it('should let a client send in each tag field exactly the tags the service takes', async () => {
    const { token: key } = await makeKey(t);
    const bytes = await png(40);
    const { filename } = await call('post', '/api/v1/upload', { key, file: bytes });
    const long = 'x'.repeat(33);
    const ten = Array.from({ length: 10 }, (_, i) => `t${i}`);
    const op = (path: string, method: string) => doc.paths[path][method];
    const form = resolve(doc, op('/api/v1/upload', 'post').requestBody.content['multipart/form-data'].schema)
      .properties.tags;
    const query = op('/api/v1/uploads', 'get').parameters.find((p: any) => p.name === 'tag').schema;
    const patch = resolve(
      doc,
      op('/api/v1/uploads/{filename}', 'patch').requestBody.content['application/json'].schema,
    ).properties.tags;
    const token = resolve(doc, doc.components.schemas.CreateUploadTokenDto).properties.tags;
    const verdicts: { field: string; value: unknown; documented: boolean; service: boolean }[] = [];
    const judge = async (field: string, schema: any, value: unknown, send: () => Promise<number>) => {
      const status = await send();
      expect([200, 400]).toContain(status);
      verdicts.push({ field, value, documented: allows(schema, value), service: status === 200 });
    };

    for (const value of [
      'logo',
      'Logo,RED',
      ' a , b ',
      '',
      '  ',
      'a,,b',
      'a,',
      ',a',
      'a b',
      'é',
      // The Kelvin sign: String#toLowerCase makes it a "k", so only a check of what was sent refuses it.
      '\u212A',
      long,
      ten.join(','),
      [...ten, 'x'].join(','),
      'a;b',
      `${'x'.repeat(32)} , y`,
    ]) {
      await judge(
        'form tags',
        form,
        value,
        async () =>
          (
            await t.http
              .post('/api/v1/upload')
              .set(...bearer(key))
              .attach('file', bytes, 'a.png')
              .field('tags', value)
          ).status,
      );
    }
    for (const value of ['logo', 'LOGO', 'a_b-1', '', ' logo', 'a,b', 'é', '\u212A', long, 'x'.repeat(32)]) {
      await judge(
        'query tag',
        query,
        value,
        async () =>
          (
            await t.http
              .get('/api/v1/uploads')
              .query({ tag: value })
              .set(...bearer(key))
          ).status,
      );
    }
    for (const value of [
      ['Logo', ' red '],
      [],
      [''],
      ['  '],
      ['a b'],
      [long],
      [` ${'x'.repeat(31)}`],
      ten,
      [...ten, 'x'],
      ['é'],
      ['\u212A'],
    ]) {
      await judge(
        'PATCH tags',
        patch,
        value,
        async () =>
          (
            await t.http
              .patch(`/api/v1/uploads/${filename}`)
              .set(...bearer(key))
              .send({ tags: value })
          ).status,
      );
    }
    for (const value of [
      ['CI'],
      ['build-42', 'x'],
      [],
      [' ci'],
      ['a b'],
      [long],
      ten,
      [...ten, 'x'],
      ['é'],
      ['\u212A'],
    ]) {
      await judge(
        'token tags',
        token,
        value,
        async () =>
          (
            await t.http
              .post('/api/v1/upload-token')
              .set(...bearer(key))
              .send({ tags: value })
          ).status,
      );
    }
    expect(verdicts.filter((v) => v.documented !== v.service)).toEqual([]);
    // Both verdicts occur in every field: the samples do test the pattern and limits.
    for (const field of ['form tags', 'query tag', 'PATCH tags', 'token tags']) {
      expect(new Set(verdicts.filter((v) => v.field === field).map((v) => v.service))).toEqual(
        new Set([true, false]),
      );
    }
  });

  /** Where a real answer and the document disagree: an undocumented status, or a body its schema does not fit. */
  function problemsOf(a: RealAnswer): string[] {
    const where = `${a.method} ${a.path} ${a.status}`;
    const response = resolve(doc, doc.paths[a.path]?.[a.method]?.responses?.[a.status]);
    if (!response) {
      return [`${where}: status not documented`];
    }
    if (!a.json || a.method === 'head') {
      return [];
    }
    const schema = response.content?.['application/json']?.schema;
    return schema ? mismatches(doc, schema, a.body, where) : [`${where}: no JSON schema`];
  }

  it('should document the ETag of every GET answer and its 304 to If-None-Match, which the service gives', () => {
    const conditional = answers.filter(
      (a) => a.method === 'get' && a.status === 200 && isConditional(a.path),
    );
    expect(conditional.length).toBeGreaterThan(10);
    const problems = conditional.flatMap((a) => {
      const op = doc.paths[a.path].get;
      const documented = op.responses['200'].headers?.ETag && op.responses['304'];
      const again = revalidations.find((r) => r.first === a)?.again;
      return [
        ...(a.headers.etag ? [] : [`${a.path}: no ETag`]),
        ...(documented ? [] : [`${a.path}: ETag or 304 not documented`]),
        // Asked again at once: 304, or 200 with another ETag when what it shows moved on (/me counts requests).
        ...(again && again.status !== 304 && !(again.status === 200 && again.headers.etag !== a.headers.etag)
          ? [`${a.path}: ${again.status} to its own ETag`]
          : []),
      ];
    });
    expect(problems).toEqual([]);
    expect(revalidations.length).toBe(conditional.filter((a) => !a.init.headers?.['If-None-Match']).length);
  });

  it('should document each real answer: its status, and a schema its JSON body conforms to', () => {
    expect(answers.flatMap(problemsOf)).toEqual([]);
    // The answers the check saw hold whole numbers and timestamps (and a null one) to judge.
    const bodies = JSON.stringify(answers.map((a) => a.body));
    for (const field of [
      'size',
      'width',
      'count',
      'request_count',
      'duration_ms',
      'status_code',
      'sessions_ended',
    ]) {
      expect(bodies).toMatch(new RegExp(`"${field}":\\d`));
    }
    expect(bodies).toMatch(/"revoked_at":"\d{4}-/);
    expect(bodies).toMatch(/"quota_files":null/);
  });
});
