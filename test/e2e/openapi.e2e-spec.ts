import { appRoutes } from '../setup/routes';
import { createTestApp, type TestApp } from '../setup/test-app';

describe('OpenAPI document (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should describe every route the app serves', async () => {
    const doc = (await t.http.get('/docs/openapi.json').expect(200)).body;
    const routes = appRoutes(t.app);
    expect(routes.length).toBeGreaterThan(15);
    const missing = routes.filter((r) => !doc.paths[r.path]?.[r.method]).map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
  });

  it('should mark every route @Auth or @Public (deny by default)', () => {
    const unmarked = appRoutes(t.app).filter((r) => !r.authMarked);
    expect(unmarked).toEqual([]);
  });

  it('should declare the bearer (fxf_, ut_) and cookie security schemes and the error envelope', async () => {
    const doc = (await t.http.get('/docs/openapi.json').expect(200)).body;
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['apiKey', 'session', 'uploadToken']);
    expect(doc.components.schemas.ErrorResponse.properties.code.enum).toContain('nsfw_rejected');
    const upload = doc.paths['/api/v1/upload'].post;
    expect(Object.keys(upload.responses)).toEqual(
      expect.arrayContaining(['200', '400', '401', '403', '413', '415', '429', '500']),
    );
  });

  it('should serve Swagger UI at /docs', async () => {
    const res = await t.http.get('/docs/').expect(200);
    expect(res.text).toContain('swagger');
  });
});
