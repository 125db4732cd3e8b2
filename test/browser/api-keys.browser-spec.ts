import type { Page } from 'playwright-core';
import { ApiKeysService } from '../../src/modules/api-keys/api-keys.service';
import { png } from '../fixtures/sample-images';
import { waitFor } from '../setup/wait';
import { type BrowserApp, expectAccessible, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any, navigator: any;

/** An upload with a bearer key, as a script would send it (Node's fetch). */
async function uploadWith(baseUrl: string, token: string, seed: number): Promise<Response> {
  const form = new FormData();
  form.append('file', new Blob([new Uint8Array(await png(seed))], { type: 'image/png' }), 'a.png');
  return fetch(`${baseUrl}/api/v1/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    body: form,
  });
}

describe('The API keys page (browser)', () => {
  let b: BrowserApp;
  let page: Page;

  beforeAll(async () => {
    b = await startBrowserApp();
    page = await b.newPage({ clipboard: true });
  });
  afterAll(() => b?.close());

  it('should register, generate a key that uploads, revoke it on the page, and the key then gets 401', async () => {
    await page.goto('/register');
    await page.getByLabel('Email').fill(`keys-${Date.now()}@example.com`);
    await page.getByLabel('Password').fill('a long enough password');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.waitForURL((url) => url.pathname === '/dashboard');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'API keys' }).click();
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();
    await page.getByText('No active keys yet.').waitFor();
    await expectAccessible(page, '/dashboard/api-keys (empty)');

    await page.getByLabel('Label').fill('laptop');
    await page.getByRole('button', { name: 'Generate key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Your new API key' });
    await dialog.waitFor();
    await dialog.getByText("Copy it now: it can't be shown again.").waitFor();
    await expectAccessible(page, 'the new-key dialog');
    await screenshots(page, 'api-key-created');
    await dialog.getByRole('button', { name: 'Copy API key' }).click();
    await dialog.getByText('Copied to the clipboard.').waitFor();
    const token = await page.evaluate(() => navigator.clipboard.readText());
    expect(token).toMatch(/^fxf_[0-9a-f]{64}$/);
    await dialog.getByRole('button', { name: 'Done' }).click();
    await dialog.waitFor({ state: 'hidden' });
    // Generate key was disabled while the key was made (which took the focus off it): it gets the focus back.
    await waitFor('focus back on Generate key', () =>
      page.getByRole('button', { name: 'Generate key' }).evaluate((el) => el === document.activeElement),
    );
    // The token is gone from the page once the dialog closes.
    expect(await page.content()).not.toContain(token);

    const ok = await uploadWith(b.baseUrl, token, 1);
    expect(ok.status).toBe(200);
    expect(((await ok.json()) as { ok: boolean }).ok).toBe(true);

    await page.reload();
    const row = page.getByRole('row', { name: /laptop/ });
    await row.waitFor();
    expect(await row.getByRole('cell').nth(1).textContent()).toBe(`${token.slice(0, 8)}…`);
    expect(await row.getByRole('cell').nth(4).textContent()).toBe('1');
    await screenshots(page, 'api-keys');

    await row.getByRole('button', { name: 'Revoke key laptop' }).click();
    const confirm = page.getByRole('alertdialog', { name: 'Revoke key “laptop”?' });
    await confirm.waitFor();
    await expectAccessible(page, 'the revoke confirmation');
    await confirm.getByRole('button', { name: 'Revoke key' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await page.getByText('No active keys yet.').waitFor();
    // Its row went with its Revoke button: focus is on the list's heading, not lost to <body>.
    await waitFor('focus on the "Your keys" heading', () =>
      page.getByRole('heading', { name: 'Your keys' }).evaluate((el) => el === document.activeElement),
    );

    const refused = await uploadWith(b.baseUrl, token, 2);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { code: string }).code).toBe('unauthorized');
  });

  it('should close a dialog with Escape and give focus back to the button that opened it', async () => {
    const user = await b.makeUser();
    await b.t.app.get(ApiKeysService).create(user.id, 'ci');
    const p = await b.newPage();
    await b.signIn(p, user, '/dashboard/api-keys');
    const revoke = p.getByRole('button', { name: 'Revoke key ci' });
    await revoke.focus();
    await p.keyboard.press('Enter');
    const confirm = p.getByRole('alertdialog', { name: 'Revoke key “ci”?' });
    await confirm.waitFor();
    // Focus starts on Cancel (Enter never destroys) and stays inside the dialog.
    expect(await p.evaluate(() => document.activeElement?.textContent)).toBe('Cancel');
    await p.keyboard.press('Tab');
    expect(await p.evaluate(() => document.activeElement?.closest('dialog') !== null)).toBe(true);
    await p.keyboard.press('Escape');
    await confirm.waitFor({ state: 'hidden' });
    expect(await p.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe('Revoke key ci');
    await p.getByRole('row', { name: /ci/ }).waitFor();

    // Refused (the key was revoked meanwhile, elsewhere): the dialog stays with the error, and its button, disabled
    // while it waited, has the focus back rather than <body> behind the dialog.
    await revoke.click();
    await confirm.waitFor();
    const [key] = await b.t.app.get(ApiKeysService).list(user.id);
    await b.t.app.get(ApiKeysService).revoke(user.id, key.id);
    const confirmButton = confirm.getByRole('button', { name: 'Revoke key' });
    await confirmButton.click();
    await confirm.getByRole('alert').filter({ hasText: 'It is not there any more' }).waitFor();
    await waitFor('focus back on the Revoke key button of the dialog', () =>
      confirmButton.evaluate((el) => el === document.activeElement),
    );
  });

  it('should explain the 10-key limit when it is reached', async () => {
    const user = await b.makeUser();
    for (let i = 0; i < 10; i++) {
      await b.t.app.get(ApiKeysService).create(user.id, `key-${i}`);
    }
    const p = await b.newPage({ viewport: { width: 375, height: 740 } });
    await b.signIn(p, user, '/dashboard/api-keys');
    await p.getByText('You have 10 active keys, the most an account may have.').waitFor();
    expect(await p.getByRole('button', { name: 'Generate key' }).isDisabled()).toBe(true);
    expect(await p.getByRole('row').count()).toBe(11);
    await p.getByText(`${b.baseUrl}/api/v1/upload`).first().waitFor();
    await expectAccessible(p, '/dashboard/api-keys at the limit, 375 px');
    // The keys table scrolls inside its box: the page itself never scrolls sideways on a phone.
    expect(await p.evaluate(() => document.documentElement.scrollWidth as number)).toBeLessThanOrEqual(375);
  });

  it('should clear a stale error once a key is made', async () => {
    const user = await b.makeUser();
    for (let i = 0; i < 10; i++) {
      await b.t.app.get(ApiKeysService).create(user.id, `key-${i}`);
    }
    const p = await b.newPage();
    await b.signIn(p, user, '/dashboard/api-keys');
    // At the limit, ShareX cannot mint its key: the server's sentence.
    await p.getByRole('button', { name: 'Download ShareX config' }).click();
    const limit = p.getByRole('alert').filter({ hasText: '10 active API keys' });
    await limit.waitFor();
    // Disabled while it asked, the button lost the focus: it has it back.
    await waitFor('focus back on Download ShareX config', () =>
      p
        .getByRole('button', { name: 'Download ShareX config' })
        .evaluate((el) => el === document.activeElement),
    );

    // Revoke one (focus then goes to the next key's Revoke button), and make a key with the form.
    await p.getByRole('button', { name: 'Revoke key key-0', exact: true }).click();
    await p.getByRole('alertdialog').getByRole('button', { name: 'Revoke key' }).click();
    await p.getByRole('button', { name: 'Revoke key key-0', exact: true }).waitFor({ state: 'detached' });
    const focusedLabel = await waitFor('focus on a Revoke button', () =>
      p.evaluate(() => document.activeElement?.getAttribute('aria-label') as string | null),
    );
    expect(focusedLabel).toMatch(/^Revoke key key-[1-9]$/);
    await p.getByLabel('Label').fill('laptop');
    await p.getByRole('button', { name: 'Generate key' }).click();
    const dialog = p.getByRole('dialog', { name: 'Your new API key' });
    await dialog.waitFor();
    await dialog.getByRole('button', { name: 'Done' }).click();
    await p.getByRole('row', { name: /laptop/ }).waitFor();
    await expect(limit.count()).resolves.toBe(0);

    // The other way round: the form's error goes once ShareX has made its key.
    await p.getByRole('button', { name: 'Revoke key key-1', exact: true }).click();
    await p.getByRole('alertdialog').getByRole('button', { name: 'Revoke key' }).click();
    await p.getByRole('button', { name: 'Revoke key key-1', exact: true }).waitFor({ state: 'detached' });
    await p.getByLabel('Label').fill('');
    await p.getByRole('button', { name: 'Generate key' }).click();
    const labelError = p.getByText('Give the key a label, e.g. the script or machine that will use it.');
    await labelError.waitFor();
    await Promise.all([
      p.waitForEvent('download'),
      p.getByRole('button', { name: 'Download ShareX config' }).click(),
    ]);
    await p.getByText(/^Downloaded\. It holds a new upload-only key/).waitFor();
    await expect(labelError.count()).resolves.toBe(0);
    await expect(p.getByLabel('Label').getAttribute('aria-invalid')).resolves.toBeNull();
  });
});
