import type { Page } from 'playwright-core';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { waitFor } from '../setup/wait';
import { type BrowserApp, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any;

/** The element that has the keyboard focus, as "<tag>: <its text>" ("body: …" when nothing has it). */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement;
    const tag = String(el?.tagName).toLowerCase();
    return tag === 'body' ? 'body' : `${tag}: ${String(el?.textContent ?? '').trim()}`;
  });
}

/** Waits until the page's h1 (`name`) has the focus; fails naming where it is instead. */
async function expectHeadingFocused(page: Page, name: string): Promise<void> {
  await waitFor(`focus on the "${name}" heading`, async () => (await focused(page)) === `h1: ${name}`).catch(
    async (err: Error) => {
      throw new Error(`${err.message}; it is on ${await focused(page)}`);
    },
  );
}

describe('Focus when moving between pages (browser)', () => {
  let b: BrowserApp;

  beforeAll(async () => {
    b = await startBrowserApp();
  });
  afterAll(() => b?.close());

  it('should leave the focus alone on the first page load, and say which page it is in the title', async () => {
    const page = await b.newPage();
    await page.goto('/login');
    await page.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await page.title()).toBe('Sign in · Fixitfy Upload');
    expect(await focused(page)).toBe('body');
    // A page the route table does not know has its own title too, not the one of the page before.
    await page.goto('/dashboard/no-such-page');
    await page.getByRole('heading', { level: 1, name: 'Page not found' }).waitFor();
    expect(await page.title()).toBe('Page not found · Fixitfy Upload');
  });

  it('should give the focus to the heading of the page that follows sign-in', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await page.goto('/login');
    await page.getByLabel('Email').fill(user.email);
    await page.getByLabel('Password').fill(user.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard');
    await expectHeadingFocused(page, 'Uploads');
    expect(await page.title()).toBe('Uploads · Fixitfy Upload');
  });

  it('should give the focus to the heading of the page that follows registration', async () => {
    const page = await b.newPage();
    await page.goto('/register');
    await page.getByLabel('Email').fill(`nav-${Date.now()}@example.com`);
    await page.getByLabel('Password').fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard');
    await expectHeadingFocused(page, 'Uploads');
  });

  it('should give the focus to the heading of the page a navigation link opens, and let the page move it after', async () => {
    const user = await b.makeUser();
    const keys = b.t.app.get(ApiKeysService);
    await keys.create(user.id, 'older');
    await keys.create(user.id, 'newer');
    const page = await b.newPage();
    await b.signIn(page, user);
    await page.getByRole('heading', { level: 1, name: 'Uploads' }).waitFor();

    // By keyboard, as someone who cannot use a mouse would: the link keeps the focus unless the page takes it.
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API keys' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL((url) => url.pathname === '/dashboard/api-keys');
    await expectHeadingFocused(page, 'API keys');
    expect(await page.title()).toBe('API keys · Fixitfy Upload');
    // The heading takes the focus only to be read from: Tab goes on from there into the page.
    await page.keyboard.press('Tab');
    expect(await page.evaluate(() => document.querySelector('main').contains(document.activeElement))).toBe(
      true,
    );

    // An action on the page still moves the focus where it did: a revoked key's row goes, the next key's
    // Revoke button has the focus.
    await page.getByRole('button', { name: 'Revoke key newer', exact: true }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('alertdialog').getByRole('button', { name: 'Revoke key' }).click();
    await page.getByRole('button', { name: 'Revoke key newer', exact: true }).waitFor({ state: 'detached' });
    await waitFor('focus on Revoke key older', () =>
      page.evaluate(() => document.activeElement?.getAttribute('aria-label') === 'Revoke key older'),
    );
  });

  it('should give the focus to the sign-in heading when a signed-out visit is sent to /login', async () => {
    const page = await b.newPage();
    await page.goto('/dashboard');
    await page.waitForURL((url) => url.pathname === '/login');
    await expectHeadingFocused(page, 'Sign in');
    expect(await page.title()).toBe('Sign in · Fixitfy Upload');
  });

  it('should give the focus to the sign-in heading after signing out', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/webhooks');
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((url) => url.pathname === '/login');
    await expectHeadingFocused(page, 'Sign in');
  });
});
