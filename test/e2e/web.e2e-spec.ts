import { readFileSync } from 'node:fs';
import { WEB_INDEX_FILE } from '../../src/modules/web/web-files';
import { createTestApp, type TestApp } from '../setup/test-app';
import { ensureWebBuilt } from '../setup/web-build';

/** The CSP directive `name`'s sources, from a Content-Security-Policy header. */
function directive(csp: string, name: string): string[] {
  const found = csp
    .split(';')
    .map((d) => d.trim().split(/\s+/))
    .find(([n]) => n === name);
  return found ? found.slice(1) : [];
}

describe('The website served by the app (e2e)', () => {
  let t: TestApp;
  let scriptPath: string;

  beforeAll(async () => {
    ensureWebBuilt();
    const match = /<script type="module" crossorigin src="(\/assets\/[^"]+\.js)"/.exec(
      readFileSync(WEB_INDEX_FILE, 'utf8'),
    );
    if (!match) {
      throw new Error('dist/web/index.html names no module script');
    }
    scriptPath = match[1];
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it.each([
    '/login',
    '/register',
    '/dashboard',
    '/dashboard/api-keys',
    '/dashboard/webhooks',
    '/admin',
    '/admin/audit/x',
  ])('should answer %s with index.html, uncached, under a strict CSP', async (path) => {
    const res = await t.http.get(path).expect(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.text).toContain('<div id="root"></div>');
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const csp = String(res.headers['content-security-policy']);
    expect(directive(csp, 'script-src')).toEqual(["'self'"]);
    expect(directive(csp, 'style-src')).toEqual(["'self'"]);
    expect(directive(csp, 'connect-src')).toEqual(["'self'"]);
    expect(directive(csp, 'img-src')).toEqual(["'self'", 'data:', 'blob:']);
    expect(directive(csp, 'frame-ancestors')).toEqual(["'none'"]);
    expect(directive(csp, 'default-src')).toEqual(["'none'"]);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
  });

  it('should have no inline script in index.html (the CSP would block it)', async () => {
    const res = await t.http.get('/login').expect(200);
    const scripts = [...res.text.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attributes, body] of scripts) {
      expect(attributes).toMatch(/src="\/assets\//);
      expect(body.trim()).toBe('');
    }
  });

  it('should serve a hashed asset for a year, immutable, with its type and an ETag', async () => {
    const res = await t.http.get(scriptPath).expect(200);
    expect(res.headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect(res.headers['content-type']).toMatch(/^(text|application)\/javascript/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers.etag).toBeDefined();
    await t.http.get(scriptPath).set('If-None-Match', res.headers.etag).expect(304);
  });

  it.each([
    '/assets/missing-abc123.js',
    '/assets/..%2F..%2Fpackage.json',
    '/assets/%2e%2e/index.html',
    '/assets/',
  ])('should answer %s with the JSON 404 envelope', async (path) => {
    const res = await t.http.get(path).expect(404);
    expect(res.body).toEqual({ ok: false, code: 'not_found', error: expect.any(String) });
  });

  it('should redirect / to /dashboard', async () => {
    const res = await t.http.get('/').expect(302);
    expect(res.headers.location).toBe('/dashboard');
  });

  it.each(['/api/v1/nothing-here', '/dashboardx', '/api/v1/dashboard', '/images/FIXITFY-aaaaaaaaaaaa.png'])(
    'should keep the JSON 404 envelope for %s (no history fallback outside the pages)',
    async (path) => {
      const res = await t.http.get(path).expect(404);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.body).toEqual({ ok: false, code: 'not_found', error: expect.any(String) });
    },
  );

  it('should not put the pages under the API CSP-less: /api answers stay JSON without page headers', async () => {
    const res = await t.http.get('/api/v1/auth/session').expect(401);
    expect(res.body.code).toBe('unauthorized');
    expect(res.headers['content-security-policy']).toBeUndefined();
  });
});
