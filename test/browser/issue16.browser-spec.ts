import { readFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { png } from '../fixtures/sample-images';
import { makeKey } from '../setup/factories';
import { waitFor } from '../setup/wait';
import { Receiver } from '../e2e/webhooks-receiver';
import { type BrowserApp, expectAccessible, screenshots, startBrowserApp } from './harness';

/** POST /api/v1/upload with a bearer, as a script would. */
async function uploadWith(b: BrowserApp, token: string, seed: number): Promise<Response> {
  const fd = new FormData();
  fd.set('file', new Blob([new Uint8Array(await png(seed))], { type: 'image/png' }), 'shot.png');
  return fetch(`${b.baseUrl}/api/v1/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}` },
    body: fd,
  });
}

/** An upload-only key: uploads pass, listing is 403 `forbidden`. */
async function expectUploadOnly(b: BrowserApp, token: string, seed: number): Promise<void> {
  const up = await uploadWith(b, token, seed);
  expect(up.status).toBe(200);
  const list = await fetch(`${b.baseUrl}/api/v1/uploads`, { headers: { Authorization: `Bearer ${token}` } });
  expect(list.status).toBe(403);
  expect(((await list.json()) as { code: string }).code).toBe('forbidden');
}

async function chooseFile(page: Page, seed: number, name: string): Promise<void> {
  await page.getByLabel('Choose images to upload').setInputFiles({
    name,
    mimeType: 'image/png',
    buffer: await png(seed),
  });
}

jest.setTimeout(180_000);

describe('Issue 16 in the dashboard (browser)', () => {
  let b: BrowserApp;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await Receiver.start();
    b = await startBrowserApp({ env: { ALLOW_PRIVATE_WEBHOOKS: 'true' } });
  });
  afterAll(async () => {
    await b?.close();
    await receiver?.close();
  });

  it('should create an upload-only key with the preset, list its scopes, and download a ShareX config with an upload-only key', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/api-keys');
    await page.getByRole('heading', { level: 1, name: 'API keys' }).waitFor();

    await page.getByLabel('Label').fill('ci');
    await page.getByRole('button', { name: 'CI upload-only' }).click();
    await expect(page.getByRole('checkbox', { name: /^Read/ }).isChecked()).resolves.toBe(false);
    await expect(page.getByRole('checkbox', { name: /^Upload/ }).isChecked()).resolves.toBe(true);
    await page.getByLabel('Its uploads expire after').selectOption({ label: '1 day' });
    await page.getByRole('button', { name: 'Generate key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Your new API key' });
    await dialog.waitFor();
    await dialog.getByText('It may: upload.').waitFor();
    await expectAccessible(page, '/dashboard/api-keys (new key dialog)');
    const token = (await dialog.getByTestId('new-key-token').textContent()) ?? '';
    await dialog.getByRole('button', { name: 'Done' }).click();
    await expectUploadOnly(b, token, 1601);

    const row = page.getByRole('row', { name: /^ci / });
    expect((await row.getByRole('cell').allTextContents()).slice(5, 7)).toEqual(['upload', '1 day']);

    // The curl snippet, as text.
    const curl = page.getByLabel('curl snippet');
    await curl.getByText(/curl/).waitFor();
    expect(await curl.textContent()).toContain(`${b.baseUrl}/api/v1/upload`);

    // ShareX: fetched with X-CSRF-Token, saved from a Blob (no URL with a token in the history).
    await page.getByLabel('Copy the default expiry of').selectOption({ label: 'ci (uploads expire: 1 day)' });
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download ShareX config' }).click(),
    ]);
    expect(download.url()).toMatch(/^blob:/);
    expect(download.suggestedFilename()).toBe('127.0.0.1.sxcu');
    const sxcu = JSON.parse(await readFile(await download.path(), 'utf8')) as {
      RequestURL: string;
      Headers: { Authorization: string };
      DeletionURL: string;
    };
    expect(sxcu.RequestURL).toBe(`${b.baseUrl}/api/v1/upload`);
    expect(sxcu.DeletionURL).toBe('{json:delete_url}');
    await page.getByText(/Downloaded\. It holds a new upload-only key/).waitFor();
    await expectUploadOnly(b, sxcu.Headers.Authorization.replace(/^Bearer /, ''), 1602);
    const sharexRow = page.getByRole('row', { name: /^ShareX / });
    expect((await sharexRow.getByRole('cell').allTextContents()).slice(5, 7)).toEqual(['upload', '1 day']);
    await expectAccessible(page, '/dashboard/api-keys');
    await screenshots(page, 'issue16-api-keys');
  });

  it('should upload with "expires after 1 hour" and show the expiry in the gallery', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard');
    await page.getByRole('heading', { level: 1, name: 'Uploads' }).waitFor();
    await page.getByLabel('Account usage').getByText('of unlimited storage').waitFor();
    await page.getByLabel('Expires after').selectOption({ label: '1 hour' });
    await chooseFile(page, 1603, 'soon-gone.png');
    await page.getByText('Uploaded').first().waitFor();
    await page.getByText(/expires in (59|60) minutes/).waitFor();
    await expectAccessible(page, '/dashboard (expiring upload)');
    await screenshots(page, 'issue16-dashboard-expiry');
  });

  it('should let an admin set a quota that the user sees, and refuse an upload past it with the numbers', async () => {
    const admin = await b.makeUser('admin');
    const user = await b.makeUser();
    const adminPage = await b.newPage();
    await b.signIn(adminPage, admin, `/admin/users?query=${encodeURIComponent(user.email)}`);
    await adminPage.getByRole('button', { name: `Set quota of ${user.email}` }).click();
    const dialog = adminPage.getByRole('dialog', { name: `Storage quota of ${user.email}` });
    await dialog.waitFor();
    // What the owner is told, in words: no raw "(413 quota_exceeded)".
    await dialog.getByText('its owner reads why with the numbers', { exact: false }).waitFor();
    expect(await dialog.textContent()).not.toMatch(/\(\d{3} [a-z_]+\)|quota_exceeded/);
    await dialog.getByLabel('Files').fill('x');
    await dialog.getByRole('button', { name: 'Save quota' }).click();
    await dialog.getByText('Enter a whole number of files, or leave it empty for the default.').waitFor();
    await expectAccessible(adminPage, '/admin/users (quota dialog)');
    await dialog.getByLabel('Storage (MB)').fill('5');
    await dialog.getByLabel('Files').fill('1');
    await dialog.getByRole('button', { name: 'Save quota' }).click();
    await adminPage.getByText(`${user.email}: quota now 5.0 MB, 1 files.`).waitFor();
    const row = adminPage.getByRole('row', { name: new RegExp(user.email.replace(/[.+]/g, '\\$&')) });
    await row.getByText('5.0 MB, 1 files').waitFor();
    await expectAccessible(adminPage, '/admin/users');

    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard');
    const usage = page.getByLabel('Account usage');
    await usage.getByText('of 1 allowed').waitFor();
    await usage.getByText('of 5.0 MB quota').waitFor();
    await chooseFile(page, 1604, 'first.png');
    await page.getByText('Uploaded').first().waitFor();
    await chooseFile(page, 1605, 'second.png');
    await page
      .getByText('Storage quota reached: You have 1 of your 1 files; delete some before uploading more.')
      .waitFor();
    await expectAccessible(page, '/dashboard (quota reached)');
  });

  it('should subscribe an endpoint to api_key.created, show the delivery, and redeliver it under the same id', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/webhooks');
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await page
      .getByText(/Standard Webhooks/)
      .first()
      .waitFor();

    const add = page.getByRole('region', { name: 'Add an endpoint' });
    await add.getByLabel('Endpoint URL').fill(receiver.url('/keys'));
    await add.getByRole('checkbox', { name: /^upload\.created/ }).uncheck();
    await add.getByRole('button', { name: 'Add endpoint' }).click();
    await add.getByText('Tick at least one event to send to it.').waitFor();
    await add.getByRole('checkbox', { name: /^api_key\.created/ }).check();
    await expectAccessible(page, '/dashboard/webhooks (add form)');
    await add.getByRole('button', { name: 'Add endpoint' }).click();
    const endpoint = page.getByRole('article', { name: receiver.url('/keys') });
    await endpoint.waitFor();
    await expect(endpoint.getByRole('checkbox', { name: /^api_key\.created/ }).isChecked()).resolves.toBe(
      true,
    );
    await expect(endpoint.getByRole('checkbox', { name: /^upload\.created/ }).isChecked()).resolves.toBe(
      false,
    );

    // Editable: subscribe to upload.deleted too (PATCH), then back.
    await endpoint.getByRole('checkbox', { name: /^upload\.deleted/ }).check();
    await endpoint.getByRole('button', { name: 'Save events' }).click();
    await endpoint.getByText('Saved: it now gets upload.deleted, api_key.created.').waitFor();

    await makeKey(b.t, user, 'made-for-the-hook');
    const first = await waitFor('the api_key.created delivery', () =>
      receiver.requests.find((r) => r.path === '/keys' && r.headers['x-fixitfy-event'] === 'api_key.created'),
    );
    const id = String(first.headers['webhook-id']);
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(id).toBe(first.headers['x-fixitfy-delivery']);
    expect(JSON.parse(first.rawBody.toString('utf8'))).toMatchObject({ event: 'api_key.created' });

    const redeliver = endpoint.getByRole('button', { name: /^Redeliver api_key\.created/ }).first();
    await redeliver.waitFor({ timeout: 20_000 });
    await expectAccessible(page, '/dashboard/webhooks (deliveries)');
    await redeliver.click();
    await endpoint
      .getByText(
        new RegExp(`^Redelivered api_key\\.created \\(delivery ${id}\\): answered 200 in \\d+ (ms|s)\\.$`),
      )
      .waitFor();
    const again = receiver.requests.filter((r) => r.path === '/keys' && r.headers['webhook-id'] === id);
    expect(again).toHaveLength(2);
    expect(again[1].rawBody.equals(first.rawBody)).toBe(true);
    await screenshots(page, 'issue16-webhooks');
  });
});
