import { gzipSync } from 'node:zlib';
import type { Page } from 'playwright-core';
import { png } from '../fixtures/sample-images';
import { UsersService } from '../../src/modules/auth/users.service';
import { NO_REQUEST } from '../../src/common/http/request-meta';
import { waitFor } from '../setup/wait';
import { type BrowserApp, expectAccessible, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any;

/** "<tag>#<id>" of the element that has the keyboard focus. */
function focused(page: Page): Promise<string> {
  return page.evaluate(
    () => `${String(document.activeElement?.tagName).toLowerCase()}#${document.activeElement?.id}`,
  );
}

describe('Signing in and out of the website (browser)', () => {
  let b: BrowserApp;
  let page: Page;

  beforeAll(async () => {
    b = await startBrowserApp();
    page = await b.newPage();
  });
  afterAll(() => b?.close());

  it('should send a signed-out visit of a dashboard page to /login and come back after sign-in', async () => {
    const user = await b.makeUser();
    await page.goto('/dashboard/api-keys?x=1');
    await page.waitForURL((url) => url.pathname === '/login');
    expect(new URL(page.url()).searchParams.get('next')).toBe('/dashboard/api-keys?x=1');
    await expectAccessible(page, '/login');
    await screenshots(page, 'login');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard/api-keys' && url.search === '?x=1');
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
  });

  it('should register through the form, show the navigation without Admin, and sign out', async () => {
    const context = await b.browser.newContext({ baseURL: b.baseUrl });
    const p = await context.newPage();
    try {
      await p.goto('/register');
      await expectAccessible(p, '/register');
      await screenshots(p, 'register');
      await p.getByLabel('Email').fill(`new-${Date.now()}@example.com`);
      await p.getByLabel('Password').fill('short');
      await p.getByRole('button', { name: 'Create account' }).click();
      const passwordInput = p.getByLabel('Password');
      await expect(passwordInput.getAttribute('aria-invalid')).resolves.toBe('true');
      await expect(p.getByText('The password must be at least 10 characters.').isVisible()).resolves.toBe(
        true,
      );
      await passwordInput.fill('a long enough password');
      await p.getByRole('button', { name: 'Create account' }).click();
      await p.waitForURL((url) => url.pathname === '/dashboard');
      const nav = p.getByRole('navigation', { name: 'Main' });
      await nav.getByRole('link', { name: 'Uploads' }).waitFor();
      const links = await nav.getByRole('link').allTextContents();
      expect(links).toEqual(['Uploads', 'API keys', 'Webhooks', 'Account']);
      await expect(nav.getByRole('link', { name: 'Uploads' }).getAttribute('aria-current')).resolves.toBe(
        'page',
      );
      await expectAccessible(p, '/dashboard');
      await p.getByRole('button', { name: 'Sign out' }).click();
      await p.waitForURL((url) => url.pathname === '/login');
      // The header's button went with the session: focus is on the heading of the page that follows, not <body>.
      await waitFor('focus on the Sign in heading', async () => (await focused(p)) === 'h1#login-title');
      // The session is over on the server too: a dashboard visit goes back to /login.
      await p.goto('/dashboard');
      await p.waitForURL((url) => url.pathname === '/login');
    } finally {
      await context.close();
    }
  });

  it('should announce a wrong password', async () => {
    const user = await b.makeUser();
    const p = await b.newPage();
    await p.goto('/login');
    await p.getByLabel('Email').fill(user.email);
    await p.getByLabel('Password').fill('not the password');
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    expect(new URL(p.url()).pathname).toBe('/login');
    // Disabled while it waited, the button lost the focus: it has it back, ready for another try.
    await waitFor('focus back on Sign in', async () => (await focused(p)) === 'button#sign-in');
  });

  it('should tell a banned user why they cannot sign in', async () => {
    const admin = await b.makeUser('admin');
    const user = await b.makeUser();
    const users = b.t.app.get(UsersService);
    await users.ban(user.id, 'spam uploads', { ...NO_REQUEST, actorId: admin.id });
    const p = await b.newPage();
    await p.goto('/login');
    await p.getByLabel('Email').fill(user.email);
    await p.getByLabel('Password').fill(user.password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('alert').filter({ hasText: 'This account is banned: spam uploads' }).waitFor();
    expect(new URL(p.url()).pathname).toBe('/login');
  });

  it('should send a signed-in user who gets banned to sign-in with the reason, never silently', async () => {
    const admin = await b.makeUser('admin');
    const user = await b.makeUser();
    const p = await b.newPage();
    await b.signIn(p, user, '/dashboard/api-keys');
    await p.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await b.t.app.get(UsersService).ban(user.id, 'spam uploads', { ...NO_REQUEST, actorId: admin.id });

    // The next visit asks for the session, which answers 403 banned with the reason: sign-in says so, and comes back
    // here after.
    await p.reload();
    await p.waitForURL((url) => url.pathname === '/login');
    expect(new URL(p.url()).searchParams.get('next')).toBe('/dashboard/api-keys');
    await p.getByRole('alert').filter({ hasText: 'This account is banned: spam uploads.' }).waitFor();
    await expectAccessible(p, '/login after a ban');
    await screenshots(p, 'login-banned');

    // Signing in again: the sign-in's own answer replaces it, with the reason the admin gave.
    await p.getByLabel('Email').fill(user.email);
    await p.getByLabel('Password').fill(user.password);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('alert').filter({ hasText: 'This account is banned: spam uploads.' }).waitFor();
    expect(await p.getByRole('alert').filter({ hasText: 'banned' }).count()).toBe(1);
    expect(new URL(p.url()).pathname).toBe('/login');
  });

  it('should show the Admin link to admins and an "Admins only" page to others', async () => {
    const admin = await b.makeUser('admin');
    const p = await b.newPage();
    await b.signIn(p, admin, '/admin');
    await p.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Admin' }).waitFor();
    const user = await b.makeUser();
    const q = await b.newPage({ viewport: { width: 375, height: 740 } });
    await b.signIn(q, user, '/admin/users');
    await q.getByRole('heading', { name: 'Admins only' }).waitFor();
    await expectAccessible(q, '/admin as a non-admin at 375 px');
  });

  it.each(['/login', '/dashboard'])(
    'should download at most 150 KB of gzipped JavaScript to show %s',
    async (path) => {
      const user = await b.makeUser();
      const page = await b.newPage();
      if (path !== '/login') {
        // Signed in over the API (the context's request shares its cookie jar): the page's first load is the test.
        const res = await page.context().request.post('/api/v1/auth/login', {
          data: { email: user.email, password: user.password },
        });
        expect(res.status()).toBe(200);
      }
      const bodies: Promise<number>[] = [];
      page.on('response', (res) => {
        if (res.request().resourceType() === 'script') {
          bodies.push(res.body().then((body) => gzipSync(body).length));
        }
      });
      await page.goto(path, { waitUntil: 'networkidle' });
      await page.getByRole('heading', { level: 1 }).first().waitFor();
      expect(new URL(page.url()).pathname).toBe(path);
      const sizes = await Promise.all(bodies);
      expect(sizes.length).toBeGreaterThan(0);
      const total = sizes.reduce((sum, n) => sum + n, 0);
      // The number, for the report: `FXF_SHOW_SIZES=1 npx jest test/browser/auth.browser-spec.ts`.
      if (process.env.FXF_SHOW_SIZES) {
        process.stdout.write(`${path}: ${sizes.length} scripts, ${(total / 1024).toFixed(1)} KB gzipped\n`);
      }
      expect(total).toBeLessThanOrEqual(150 * 1024);
    },
  );
});

describe('Registration closed, and a tight upload limit (browser)', () => {
  let b: BrowserApp;

  beforeAll(async () => {
    b = await startBrowserApp({ env: { REGISTRATION_OPEN: 'false', RATE_LIMIT_UPLOADS_PER_MINUTE: '2' } });
  });
  afterAll(() => b?.close());

  it('should say that registration is closed', async () => {
    const p = await b.newPage();
    await p.goto('/register');
    await p.getByLabel('Email').fill('someone@example.com');
    await p.getByLabel('Password').fill('a long enough password');
    await p.getByRole('button', { name: 'Create account' }).click();
    await p.getByRole('alert').filter({ hasText: 'Registration is closed on this server.' }).waitFor();
    // The form (and its button) gave way to that sentence: it has the focus.
    await waitFor('focus on the closed notice', async () => (await focused(p)) === 'p#registration-closed');
    await expectAccessible(p, '/register (closed)');
  });

  it('should show the rate limit with the time to wait', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user);
    await page
      .getByLabel('Choose images to upload')
      .setInputFiles(
        await Promise.all(
          [1, 2, 3].map(async (n) => ({ name: `${n}.png`, mimeType: 'image/png', buffer: await png(n) })),
        ),
      );
    const limited = page.getByText(/^Too many requests this minute\. Try again in \d+ seconds?\.$/);
    await limited.waitFor();
    expect(await limited.count()).toBe(1);
    expect(await page.getByRole('link', { name: /\/images\/FIXITFY-/ }).count()).toBe(2);
  });
});
