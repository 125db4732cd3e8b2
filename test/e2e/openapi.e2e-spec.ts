import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { appRoutes } from '../setup/routes';
import { createTestApp, type TestApp } from '../setup/test-app';

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

  it('should give no optional query parameter or form field an example, which Swagger UI would send', () => {
    // "Try it out" fills every field with its example: a past `before` listed nothing, and the upload form's two
    // expiry examples made every upload a 400.
    const prefilled = operations().flatMap(({ method, path, op }) => [
      ...(op.parameters ?? [])
        .filter((p: any) => p.in === 'query' && !p.required && (p.example ?? p.schema?.example) !== undefined)
        .map((p: any) => `${method} ${path} ?${p.name}`),
      ...Object.entries(op.requestBody?.content?.['multipart/form-data']?.schema?.properties ?? {})
        .filter(([, schema]: [string, any]) => schema.example !== undefined)
        .map(([name]) => `${method} ${path} form ${name}`),
    ]);
    expect(prefilled).toEqual([]);
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
