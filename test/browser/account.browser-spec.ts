import type { Locator, Page, Request } from 'playwright-core';
import { login, type TestUser } from '../setup/factories';
import { waitFor } from '../setup/wait';
import { type BrowserApp, expectAccessible, PHONE, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any;

const NEW_PASSWORD = 'a brand new passphrase';

/** The POSTs to /api/v1/auth/password that `page` has sent so far. */
function passwordPosts(page: Page): Request[] {
  const sent: Request[] = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && new URL(req.url()).pathname === '/api/v1/auth/password') {
      sent.push(req);
    }
  });
  return sent;
}

/** The error tied to `input`: aria-invalid, and the text of the elements its aria-describedby names. */
async function errorOf(input: Locator): Promise<{ invalid: string | null; described: string }> {
  return input.evaluate((el: any) => ({
    invalid: el.getAttribute('aria-invalid') as string | null,
    described: String(el.getAttribute('aria-describedby') ?? '')
      .split(' ')
      .filter(Boolean)
      .map((id: string) => String(document.getElementById(id)?.textContent ?? ''))
      .join(' | '),
  }));
}

function isFocused(target: Locator): Promise<boolean> {
  return target.evaluate((el) => el === document.activeElement);
}

/** The form's three fields and its button. */
function form(page: Page) {
  const region = page.getByRole('form', { name: 'Change password' });
  return {
    current: region.getByLabel('Current password'),
    next: region.getByLabel('New password', { exact: true }),
    confirm: region.getByLabel('Confirm new password'),
    submit: region.getByRole('button', { name: /^Change password|^Changing password…/ }),
    status: region.getByRole('status'),
  };
}

async function fill(page: Page, current: string, next: string, confirm: string): Promise<void> {
  const f = form(page);
  await f.current.fill(current);
  await f.next.fill(next);
  await f.confirm.fill(confirm);
}

jest.setTimeout(180_000);

describe('The account page (browser)', () => {
  let b: BrowserApp;

  beforeAll(async () => {
    b = await startBrowserApp();
  });
  afterAll(() => b?.close());

  it('should change the password: client checks first, the server’s refusals as text, then other sessions end', async () => {
    const email = `account-${Date.now()}@example.com`;
    const oldPassword = 'a long enough password';
    const person: TestUser = { id: '', email, password: oldPassword };
    const page = await b.newPage();
    await page.goto('/register');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(oldPassword);
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard');
    // Two other browsers signed in before the change.
    const others = [await b.newPage(), await b.newPage()];
    for (const other of others) {
      await b.signIn(other, person, '/dashboard/api-keys');
    }

    // Reached from the navigation, next to API keys and Webhooks.
    const nav = page.getByRole('navigation', { name: 'Main' });
    expect(await nav.getByRole('link').allTextContents()).toEqual([
      'Uploads',
      'API keys',
      'Webhooks',
      'Account',
    ]);
    await nav.getByRole('link', { name: 'Account' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard/account');
    await page.getByRole('heading', { level: 1, name: 'Account' }).waitFor();
    await expect(page.title()).resolves.toBe('Account · Fixitfy Upload');
    await expect(nav.getByRole('link', { name: 'Account' }).getAttribute('aria-current')).resolves.toBe(
      'page',
    );
    await expect(page.getByRole('definition').first().textContent()).resolves.toBe(email);
    const f = form(page);
    await expect(f.current.getAttribute('autocomplete')).resolves.toBe('current-password');
    await expect(f.next.getAttribute('autocomplete')).resolves.toBe('new-password');
    await expect(f.confirm.getAttribute('autocomplete')).resolves.toBe('new-password');
    await expectAccessible(page, '/dashboard/account');
    const posts = passwordPosts(page);

    // A confirmation that differs: told next to it, and nothing is sent.
    await fill(page, oldPassword, NEW_PASSWORD, `${NEW_PASSWORD}!`);
    await f.submit.click();
    await page.getByText('The two new passwords are not the same.').waitFor();
    expect(await errorOf(f.confirm)).toEqual({
      invalid: 'true',
      described: 'The two new passwords are not the same.',
    });
    expect(await isFocused(f.confirm)).toBe(true);
    await expectAccessible(page, '/dashboard/account (confirmation differs)');

    // Too short: told next to the new password (with its hint), nothing sent.
    await fill(page, oldPassword, 'short pw', 'short pw');
    await f.submit.click();
    await page.getByText('The new password must be at least 10 characters.').waitFor();
    expect(await errorOf(f.next)).toEqual({
      invalid: 'true',
      described: 'At least 10 characters. | The new password must be at least 10 characters.',
    });
    expect((await errorOf(f.confirm)).invalid).toBeNull();
    expect(posts).toHaveLength(0);

    // A wrong current password: the server's sentence, next to that field, as text. The button waits disabled
    // (held here, as a slowed-down answer would be).
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route('**/api/v1/auth/password', async (route) => {
      await held;
      await route.continue();
    });
    await fill(page, 'not my password at all', NEW_PASSWORD, NEW_PASSWORD);
    await f.submit.click();
    const pending = page.getByRole('button', { name: 'Changing password…' });
    await pending.waitFor();
    expect(await pending.isDisabled()).toBe(true);
    await f.submit.click({ force: true }).catch(() => undefined);
    release();
    await page.getByText('The current password is wrong.').waitFor();
    await page.unroute('**/api/v1/auth/password');
    expect(posts).toHaveLength(1);
    expect(JSON.parse(posts[0].postData() ?? '{}')).toEqual({
      current_password: 'not my password at all',
      new_password: NEW_PASSWORD,
    });
    expect(await errorOf(f.current)).toEqual({
      invalid: 'true',
      described: 'The current password is wrong.',
    });
    expect(await isFocused(f.current)).toBe(true);
    await expect(f.submit.isEnabled()).resolves.toBe(true);
    await expect(f.submit.textContent()).resolves.toBe('Change password');

    // The same password again: the server refuses it (400), its sentence next to the new password.
    await fill(page, oldPassword, oldPassword, oldPassword);
    await f.submit.click();
    await page.getByText('The new password must differ from the current one.').waitFor();
    expect(await errorOf(f.next)).toEqual({
      invalid: 'true',
      described: 'At least 10 characters. | The new password must differ from the current one.',
    });
    expect((await errorOf(f.current)).invalid).toBeNull();
    expect(posts).toHaveLength(2);

    // Right: the message counts the two other sessions, the fields are empty, the button has the focus back, even
    // after the longest wait the server imposes (10 s after repeated failures; held 11 s here).
    await page.route('**/api/v1/auth/password', async (route) => {
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      await route.continue();
    });
    await fill(page, oldPassword, NEW_PASSWORD, NEW_PASSWORD);
    await f.submit.focus();
    await page.keyboard.press('Enter');
    await f.status
      .filter({ hasText: 'Password changed. 2 other sessions were signed out.' })
      .waitFor({ timeout: 30_000 });
    await page.unroute('**/api/v1/auth/password');
    expect(posts).toHaveLength(3);
    for (const input of [f.current, f.next, f.confirm]) {
      await expect(input.inputValue()).resolves.toBe('');
      expect((await errorOf(input)).invalid).toBeNull();
    }
    await waitFor('focus back on the Change password button', () => isFocused(f.submit));
    expect(await page.evaluate(() => document.activeElement !== document.body)).toBe(true);
    await expectAccessible(page, '/dashboard/account (changed)');
    await screenshots(page, 'account');

    // Nothing else signed in now: said so.
    await fill(page, NEW_PASSWORD, `${NEW_PASSWORD} 2`, `${NEW_PASSWORD} 2`);
    await f.submit.click();
    await f.status.filter({ hasText: 'Password changed. No other session was signed in.' }).waitFor();
    const newest = `${NEW_PASSWORD} 2`;

    // This browser is still signed in; the other two land on sign-in at their next page.
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Account' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/dashboard/account');
    for (const other of others) {
      await other.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Webhooks' }).click();
      await other.waitForURL((url) => url.pathname === '/login');
    }

    // Signed out here: the old password fails, the new one works.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL((url) => url.pathname === '/login');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(oldPassword);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Wrong email or password.' }).waitFor();
    expect(new URL(page.url()).pathname).toBe('/login');
    await b.signIn(page, { ...person, password: newest });
  });

  it('should say "1 other session", and work by keyboard alone at 375 px without sideways scrolling', async () => {
    const user = await b.makeUser();
    // One other session, signed in over the API.
    const other = await login(b.t, user);
    const page = await b.newPage({ viewport: PHONE });
    await b.signIn(page, user, '/dashboard/account');
    await page.getByRole('heading', { level: 1, name: 'Account' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(
      PHONE.width,
    );
    await expectAccessible(page, '/dashboard/account at 375 px');

    // Tab from the top of the page to the first field, then type and Tab through the form, and Enter.
    const f = form(page);
    await page.evaluate(() => document.activeElement?.blur());
    for (let i = 0; i < 20 && !(await isFocused(f.current)); i++) {
      await page.keyboard.press('Tab');
    }
    expect(await isFocused(f.current)).toBe(true);
    await page.keyboard.type(user.password);
    await page.keyboard.press('Tab');
    expect(await isFocused(f.next)).toBe(true);
    await page.keyboard.type(NEW_PASSWORD);
    await page.keyboard.press('Tab');
    expect(await isFocused(f.confirm)).toBe(true);
    await page.keyboard.type(NEW_PASSWORD);
    await page.keyboard.press('Enter');
    await f.status.filter({ hasText: 'Password changed. 1 other session was signed out.' }).waitFor();
    expect(await page.evaluate(() => document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(
      PHONE.width,
    );

    // That session is over on the server.
    const res = await b.t.http.get('/api/v1/auth/session').set('Cookie', other.cookie);
    expect(res.status).toBe(401);
  });
});
