import { RequestMethod } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, ModulesContainer, Reflector } from '@nestjs/core';
import { METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants';
import { AUTH_POLICY, PUBLIC_ROUTE } from '../../src/common/auth/auth.decorator';
import { createTestApp, type TestApp } from '../setup/test-app';

interface Route {
  method: string;
  path: string;
  authMarked: boolean;
}

/** Every route the app serves, read from the controllers Nest registered. */
function appRoutes(t: TestApp): Route[] {
  const discovery = new DiscoveryService(t.app.get(ModulesContainer));
  const scanner = new MetadataScanner();
  const reflector = t.app.get(Reflector);
  const routes: Route[] = [];
  for (const wrapper of discovery.getControllers()) {
    const instance = wrapper.instance as object | undefined;
    if (!instance || !wrapper.metatype) {
      continue;
    }
    const base = String(Reflect.getMetadata(PATH_METADATA, wrapper.metatype) ?? '');
    for (const name of scanner.getAllMethodNames(Object.getPrototypeOf(instance))) {
      const handler = (instance as Record<string, unknown>)[name] as (...args: unknown[]) => unknown;
      const sub = Reflect.getMetadata(PATH_METADATA, handler) as string | undefined;
      if (sub === undefined) {
        continue;
      }
      const method = RequestMethod[Reflect.getMetadata(METHOD_METADATA, handler) as number];
      const path = `/${[base, sub].filter((p) => p && p !== '/').join('/')}`.replace(/\/+/g, '/');
      const targets = [handler, wrapper.metatype];
      routes.push({
        method: method.toLowerCase(),
        path: path.replace(/:(\w+)/g, '{$1}'),
        authMarked:
          !!reflector.getAllAndOverride(PUBLIC_ROUTE, targets) ||
          !!reflector.getAllAndOverride(AUTH_POLICY, targets),
      });
    }
  }
  return routes;
}

describe('OpenAPI document (e2e)', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('should describe every route the app serves', async () => {
    const doc = (await t.http.get('/docs/openapi.json').expect(200)).body;
    const routes = appRoutes(t);
    expect(routes.length).toBeGreaterThan(15);
    const missing = routes.filter((r) => !doc.paths[r.path]?.[r.method]).map((r) => `${r.method} ${r.path}`);
    expect(missing).toEqual([]);
  });

  it('should mark every route @Auth or @Public (deny by default)', () => {
    const unmarked = appRoutes(t).filter((r) => !r.authMarked);
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
