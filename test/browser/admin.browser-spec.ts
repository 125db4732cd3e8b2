import type { Page } from 'playwright-core';
import { png } from '../fixtures/sample-images';
import { bearer, makeKey, type TestUser } from '../setup/factories';
import { readInfra } from '../setup/infra';
import { TcpProxy } from '../setup/tcp-proxy';
import { waitFor } from '../setup/wait';
import { type BrowserApp, expectAccessible, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any;

interface AuditEntryJson {
  id: string;
  action: string;
  target_id: string | null;
}

// Several people's pages in one real browser on a busy machine: minutes, not the default 60 s.
jest.setTimeout(180_000);

describe('Admin pages (browser)', () => {
  let b: BrowserApp;
  let admin: TestUser;
  let adminKey: string;
  let adminPage: Page;
  /** Between the app and PostgreSQL: a refusal the website must show is made by cutting it (a real fault). */
  let pgProxy: TcpProxy;

  beforeAll(async () => {
    pgProxy = await TcpProxy.inFrontOf(readInfra().adminUrl);
    // 49 uploads in one test (to page the uploads grid): the per-minute upload limit out of the way.
    b = await startBrowserApp({
      env: { RATE_LIMIT_UPLOADS_PER_MINUTE: '1000' },
      appDatabaseUrl: (url) => pgProxy.via(url),
    });
    admin = await b.makeUser('admin');
    adminKey = (await makeKey(b.t, admin)).token;
    adminPage = await b.newPage();
    await b.signIn(adminPage, admin, '/admin');
  });
  afterAll(async () => {
    await pgProxy?.setMode('pass');
    await b?.close();
    await pgProxy?.close();
  });

  /** The audit log as the API gives it, every page, for comparing with what the page shows. */
  async function auditFromApi(action: string): Promise<AuditEntryJson[]> {
    const all: AuditEntryJson[] = [];
    let before: string | null = null;
    do {
      const res = await b.t.http
        .get('/api/v1/admin/audit')
        .query({ action, limit: 100, ...(before ? { before } : {}) })
        .set(...bearer(adminKey))
        .expect(200);
      all.push(...(res.body.entries as AuditEntryJson[]));
      before = res.body.next_before as string | null;
    } while (before);
    return all;
  }

  async function findUserRow(email: string) {
    await adminPage.goto('/admin/users');
    await adminPage.getByLabel('Search by email').fill(email);
    await adminPage.getByRole('button', { name: 'Search' }).click();
    await adminPage.waitForURL((url) => url.searchParams.get('query') === email);
    const row = adminPage.getByRole('row').filter({ has: adminPage.getByRole('rowheader', { name: email }) });
    await row.waitFor();
    return row;
  }

  it('should show the admin overview, and a non-admin gets an "Admins only" page, never a blank one', async () => {
    await adminPage.getByRole('heading', { level: 1, name: 'Admin' }).waitFor();
    expect(await adminPage.title()).toBe('Admin · Fixitfy Upload');
    const nav = adminPage.getByRole('navigation', { name: 'Admin' });
    expect(await nav.getByRole('link').allTextContents()).toEqual([
      'Overview',
      'Users',
      'Uploads',
      'Audit log',
    ]);
    await adminPage.getByRole('heading', { name: 'Latest in the audit log' }).waitFor();
    await adminPage.getByRole('listitem').filter({ hasText: 'user.registered' }).first().waitFor();
    await expectAccessible(adminPage, '/admin');
    await screenshots(adminPage, 'admin');

    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/admin/audit');
    await page.getByRole('heading', { level: 1, name: 'Admins only' }).waitFor();
    await page.getByText('Your account is not an admin account.', { exact: false }).waitFor();
    expect(await page.title()).toBe('Admins only · Fixitfy Upload');
    const links = await page.getByRole('navigation', { name: 'Main' }).getByRole('link').allTextContents();
    expect(links).not.toContain('Admin');
    await expectAccessible(page, '/admin for a non-admin');
    await screenshots(page, 'admin-not-admin');
  });

  it('should ban a user with a reason: their open dashboard goes to sign-in saying so; the audit log shows it, filtered by action; unban', async () => {
    const victim = await b.makeUser();
    const victimPage = await b.newPage();
    await b.signIn(victimPage, victim, '/dashboard/webhooks');
    await victimPage.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();

    const row = await findUserRow(victim.email);
    expect((await row.getByRole('cell').allTextContents()).slice(0, 4)).toEqual([
      'user',
      'Active',
      '0',
      '0 B',
    ]);
    await expectAccessible(adminPage, '/admin/users');
    await row.getByRole('button', { name: `Ban ${victim.email}` }).click();
    const dialog = adminPage.getByRole('alertdialog', { name: `Ban ${victim.email}?` });
    await dialog.waitFor();
    await expectAccessible(adminPage, 'ban dialog');
    // What the banned person is told, in words: no raw "(403 banned)".
    await dialog.getByText('they are refused with “This account is banned.”', { exact: false }).waitFor();
    expect(await dialog.textContent()).not.toMatch(/\(\d{3} [a-z_]+\)|\b403\b/);
    // A ban needs a reason.
    await dialog.getByRole('button', { name: 'Ban user' }).click();
    await dialog.getByText('Give a reason: it is shown in the audit log.').waitFor();
    await expect(dialog.getByLabel('Reason').getAttribute('aria-invalid')).resolves.toBe('true');
    await dialog.getByLabel('Reason').fill('Spam uploads <b>not bold</b>');
    await dialog.getByRole('button', { name: 'Ban user' }).click();
    await dialog.waitFor({ state: 'hidden' });
    await adminPage.getByText(`${victim.email} is banned.`).waitFor();
    await row.getByText('Reason: Spam uploads <b>not bold</b>').waitFor();
    const unbanButton = row.getByRole('button', { name: `Unban ${victim.email}` });
    await unbanButton.waitFor();
    // Focus is back on the row's button, which now says Unban: never lost to <body>.
    await waitFor('focus on the Unban button', () =>
      unbanButton.evaluate((el) => el === document.activeElement),
    );
    await screenshots(adminPage, 'admin-users');

    // The victim's page was open all along: its next request (a poll of the page, or a click) answers 403 banned,
    // and the page goes to sign-in saying so, then comes back after sign-in.
    await victimPage.waitForURL((url) => url.pathname === '/login');
    expect(new URL(victimPage.url()).searchParams.get('next')).toBe('/dashboard/webhooks');
    // The reason as text: nothing from the server is rendered as HTML.
    await victimPage
      .getByRole('alert')
      .filter({ hasText: 'This account is banned: Spam uploads <b>not bold</b>.' })
      .waitFor();

    // The audit page: the ban is there, and the action filter keeps only bans.
    await adminPage.goto('/admin/audit');
    await adminPage.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await adminPage.getByRole('list', { name: 'Audit entries' }).waitFor();
    await expectAccessible(adminPage, '/admin/audit');
    await adminPage.getByLabel('Action').selectOption('user.banned');
    await adminPage.getByRole('button', { name: 'Apply filters' }).click();
    await adminPage.waitForURL((url) => url.searchParams.get('action') === 'user.banned');
    const entries = adminPage.getByRole('list', { name: 'Audit entries' }).getByRole('listitem');
    const ban = entries.filter({ hasText: victim.id });
    await ban.waitFor();
    const actions = await entries.locator('code').allTextContents();
    expect(new Set(actions)).toEqual(new Set(['user.banned']));
    expect(actions).toHaveLength((await auditFromApi('user.banned')).length);
    // Who did it and the metadata, readable as text (the reason's markup stays text).
    await ban.getByRole('link', { name: admin.email }).waitFor();
    const metadata = JSON.parse((await ban.locator('pre').textContent()) ?? '') as Record<string, unknown>;
    expect(metadata).toEqual({ email: victim.email, reason: 'Spam uploads <b>not bold</b>' });
    expect(await ban.locator('b').count()).toBe(0);
    await screenshots(adminPage, 'admin-audit');

    // A target link filters by that target, keeping the action.
    await ban.getByRole('link', { name: victim.id }).click();
    await adminPage.waitForURL(
      (url) =>
        url.searchParams.get('target') === victim.id && url.searchParams.get('action') === 'user.banned',
    );
    await expect(adminPage.getByLabel('Target').inputValue()).resolves.toBe(victim.id);
    await adminPage.getByText('Showing 1 entry, all there are.').waitFor();
    await expect(entries.count()).resolves.toBe(1);

    // Unban after a confirmation. The ban ended the victim's session (API.md: a ban ends it): their open page is sent
    // to sign in, and works again once they have.
    const again = await findUserRow(victim.email);
    await again.getByRole('button', { name: `Unban ${victim.email}` }).click();
    const confirm = adminPage.getByRole('alertdialog', { name: `Unban ${victim.email}?` });
    await confirm.waitFor();
    await expectAccessible(adminPage, 'unban dialog');
    await confirm.getByRole('button', { name: 'Unban user' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await again.getByText('Active').waitFor();
    const banButton = again.getByRole('button', { name: `Ban ${victim.email}` });
    await waitFor('focus on the Ban button', () => banButton.evaluate((el) => el === document.activeElement));
    // The unban ended the banned session: a reload of sign-in no longer says "banned".
    await victimPage.reload();
    await victimPage.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await victimPage.getByRole('alert').filter({ hasText: 'banned' }).count()).toBe(0);
    await b.signIn(victimPage, victim, '/dashboard/webhooks');
    await victimPage.getByRole('button', { name: 'Reveal secret' }).click();
    await victimPage.getByRole('region', { name: 'Signing secret' }).locator('code').waitFor();
  });

  it('should keep the focus in the Ban and Quota dialogs when the server refuses, on their own button', async () => {
    const other = await b.makeUser('admin');
    const row = await findUserRow(other.email);

    // Ban: the database goes away between opening the dialog and confirming (the proxy in front of PostgreSQL
    // refuses connections), so the server really answers 500 db_failed; nothing is saved.
    await row.getByRole('button', { name: `Ban ${other.email}` }).click();
    const ban = adminPage.getByRole('alertdialog', { name: `Ban ${other.email}?` });
    await ban.getByLabel('Reason').fill('testing a refusal');
    const banButton = ban.getByRole('button', { name: 'Ban user' });
    const answered = adminPage.waitForResponse((r) =>
      r.url().endsWith(`/api/v1/admin/users/${other.id}/ban`),
    );
    await pgProxy.setMode('refuse');
    try {
      await banButton.click();
      const answer = await answered;
      expect(answer.status()).toBe(500);
      expect(await answer.json()).toMatchObject({ ok: false, code: 'db_failed' });
      await ban
        .getByRole('alert')
        .filter({ hasText: 'The server failed to do this. Nothing was saved; try again in a moment.' })
        .waitFor();
    } finally {
      await pgProxy.setMode('pass');
    }
    // Disabled while it waited, the button lost the focus: it has it back, not <body> behind the dialog.
    await waitFor('focus back on the Ban user button', () =>
      banButton.evaluate((el) => el === document.activeElement),
    );
    await ban.getByRole('button', { name: 'Cancel' }).click();
    await ban.waitFor({ state: 'hidden' });
    const listed = await b.t.http
      .get('/api/v1/admin/users')
      .query({ query: other.email })
      .set(...bearer(adminKey))
      .expect(200);
    expect(listed.body.users).toEqual([expect.objectContaining({ id: other.id, banned: false })]);

    // Quota: the server refuses more than 2147483647 files (400), which the form lets through.
    await row.getByRole('button', { name: `Set quota of ${other.email}` }).click();
    const quota = adminPage.getByRole('dialog', { name: `Storage quota of ${other.email}` });
    await quota.getByLabel('Files').fill('99999999999');
    const saveButton = quota.getByRole('button', { name: 'Save quota' });
    await saveButton.click();
    await quota.getByRole('alert').filter({ hasText: 'quota_files' }).waitFor();
    await waitFor('focus back on the Save quota button', () =>
      saveButton.evaluate((el) => el === document.activeElement),
    );
    await quota.getByRole('button', { name: 'Cancel' }).click();
    await quota.waitFor({ state: 'hidden' });
  });

  it('should page through the audit log by cursor, each entry once, in the API order', async () => {
    for (let i = 0; i < 18; i++) {
      await b.makeUser();
    }
    const expected = await auditFromApi('user.registered');
    expect(expected.length).toBeGreaterThan(20);

    await adminPage.goto('/admin/audit?action=user.registered');
    await adminPage.getByLabel('Per page').selectOption('10');
    await adminPage.getByRole('button', { name: 'Apply filters' }).click();
    await adminPage.waitForURL((url) => url.searchParams.get('limit') === '10');
    const entries = adminPage.getByRole('list', { name: 'Audit entries' }).getByRole('listitem');
    await adminPage.getByText('Showing 10 entries, newest first.').waitFor();
    const more = adminPage.getByRole('button', { name: 'Show older entries' });
    let shown = 10;
    while (await more.isVisible()) {
      const before = shown;
      await more.click();
      shown = Math.min(shown + 10, expected.length);
      await adminPage.getByText(new RegExp(`^Showing ${shown} entries`)).waitFor();
      // Focus goes to the first entry the page added (its first link), even when the button went with it.
      await waitFor(`focus on entry ${before + 1}`, () =>
        entries
          .nth(before)
          .getByRole('link')
          .first()
          .evaluate((el) => el === document.activeElement),
      );
    }
    await adminPage.getByText(`Showing ${expected.length} entries, all there are.`).waitFor();
    // The target of user.registered is the new user's id: one per entry, in the API's order.
    const targets = await entries.getByRole('link', { name: /^[0-9a-f-]{36}$/ }).allTextContents();
    expect(targets).toEqual(expected.map((e) => e.target_id));
    expect(new Set(targets).size).toBe(expected.length);

    // A date filter before any of them shows none; an actor with no account matches nothing.
    await adminPage.getByLabel('Up to (date)').fill('2001-01-01');
    await adminPage.getByRole('button', { name: 'Apply filters' }).click();
    await adminPage.getByText('No entries match these filters.').waitFor();
    // Clear filters goes with the filters: focus goes to the first filter, not <body>.
    await adminPage.getByRole('link', { name: 'Clear filters' }).click();
    await adminPage.getByRole('link', { name: 'Clear filters' }).waitFor({ state: 'detached' });
    await waitFor('focus on the Action filter', () =>
      adminPage.getByLabel('Action').evaluate((el) => el === document.activeElement),
    );
    await adminPage.goto('/admin/audit?actor=nobody%40example.com');
    await adminPage.getByText('No entries match these filters.').waitFor();
    await expectAccessible(adminPage, '/admin/audit (no matches)');
  });

  it("should show any user's uploads as thumbnails and delete one after a confirmation", async () => {
    const owner = await makeKey(b.t);
    const files: string[] = [];
    for (const seed of [71, 72]) {
      const res = await b.t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(seed, 400, 300), 'a.png')
        .expect(200);
      files.push(res.body.filename as string);
    }

    const row = await findUserRow(owner.user.email);
    await row.getByRole('link', { name: `Uploads of ${owner.user.email}` }).click();
    await adminPage.waitForURL(
      (url) => url.pathname === '/admin/uploads' && url.searchParams.get('user') === owner.user.id,
    );
    const grid = adminPage.getByRole('list', { name: 'Uploads' });
    const tiles = grid.getByRole('listitem');
    await tiles.first().waitFor();
    expect(await tiles.count()).toBe(2);
    // Newest first; thumbnails are variants (never the original) and they load.
    const imgs = grid.getByRole('img');
    const alts: string[] = [];
    for (let i = 0; i < (await imgs.count()); i++) {
      alts.push((await imgs.nth(i).getAttribute('alt')) ?? '');
      expect(await imgs.nth(i).getAttribute('src')).toMatch(/\?w=320&format=auto$/);
    }
    expect(alts).toEqual([...files].reverse().map((f) => `${f} by ${owner.user.email}`));
    for (let i = 0; i < (await imgs.count()); i++) {
      await waitFor(`thumbnail ${i} to load`, () =>
        imgs.nth(i).evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth > 0),
      );
    }
    await expectAccessible(adminPage, '/admin/uploads');
    await screenshots(adminPage, 'admin-uploads');

    await grid.getByRole('button', { name: `Delete ${files[0]}` }).click();
    const confirm = adminPage.getByRole('alertdialog', { name: `Delete ${files[0]}?` });
    await confirm.waitFor();
    await expectAccessible(adminPage, 'delete upload dialog');
    await confirm.getByRole('button', { name: 'Delete upload' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await adminPage.getByText(`${files[0]} is deleted; its direct link answers 404.`).waitFor();
    await grid.getByRole('button', { name: `Delete ${files[0]}` }).waitFor({ state: 'detached' });
    expect(await tiles.count()).toBe(1);
    // Focus moves to the tile that took its place, not to <body>.
    await waitFor('focus on the remaining tile', () =>
      grid.getByRole('listitem', { name: files[1] }).evaluate((el) => el === document.activeElement),
    );
    await b.t.http.get(`/images/${files[0]}`).expect(404);
    await b.t.http.get(`/images/${files[1]}`).expect(200);
  });

  it('should give the focus to what "Show more" added, and to the filter when "Show everyone’s" goes', async () => {
    // More than a page (50) of users.
    const listed = await b.t.http
      .get('/api/v1/admin/users')
      .query({ limit: 100 })
      .set(...bearer(adminKey));
    for (let n = (listed.body.users as unknown[]).length; n <= 50; n++) {
      await b.makeUser();
    }
    await adminPage.goto('/admin/users');
    const users = adminPage.getByRole('table', { name: 'Users' });
    await users.getByRole('row').nth(50).waitFor();
    const moreUsers = adminPage.getByRole('button', { name: 'Show more users' });
    await moreUsers.focus();
    await adminPage.keyboard.press('Enter');
    await users.getByRole('row').nth(51).waitFor();
    // The 51st user's row (row 0 is the header): its first link has the focus.
    await waitFor('focus on the first link of the 51st user', () =>
      users
        .getByRole('row')
        .nth(51)
        .getByRole('link')
        .first()
        .evaluate((el) => el === document.activeElement),
    );

    // More than a page (48) of uploads, all of one owner.
    const owner = await makeKey(b.t);
    for (let seed = 100; seed < 149; seed++) {
      await b.t.http
        .post('/api/v1/upload')
        .set(...bearer(owner.token))
        .attach('file', await png(seed, 40, 30), 'a.png')
        .expect(200);
    }
    await adminPage.goto(`/admin/uploads?user=${owner.user.id}`);
    const tiles = adminPage.getByRole('list', { name: 'Uploads' }).getByRole('listitem');
    await tiles.nth(47).waitFor();
    await adminPage.getByRole('button', { name: 'Show more uploads' }).focus();
    await adminPage.keyboard.press('Enter');
    await tiles.nth(48).waitFor();
    await adminPage.getByRole('button', { name: 'Show more uploads' }).waitFor({ state: 'detached' });
    await waitFor('focus on the 49th tile', () =>
      tiles.nth(48).evaluate((el) => el === document.activeElement),
    );

    // "Show everyone’s" goes with the filter: focus goes to the filter's field, emptied.
    await adminPage.getByRole('link', { name: 'Show everyone’s' }).focus();
    await adminPage.keyboard.press('Enter');
    await adminPage.waitForURL((url) => url.pathname === '/admin/uploads' && !url.searchParams.has('user'));
    const field = adminPage.getByLabel('Only the uploads of user (id)');
    await waitFor('focus on the user filter', () => field.evaluate((el) => el === document.activeElement));
    await expect(field.inputValue()).resolves.toBe('');
  });
});
