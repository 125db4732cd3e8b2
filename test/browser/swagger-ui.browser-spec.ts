import type { Locator, Page } from 'playwright-core';
import { png } from '../fixtures/sample-images';
import { makeKey } from '../setup/factories';
import { type BrowserApp, startBrowserApp } from './harness';

// Swagger UI is a third-party page with few accessible names: its own classes and data attributes find things here.

/** Expands an operation and presses "Try it out". */
async function tryItOut(operation: Locator): Promise<void> {
  await operation.locator('.opblock-summary').click();
  await operation.getByRole('button', { name: 'Try it out' }).click();
}

/** Presses Execute and answers what the API answered: status and JSON body. */
async function execute(page: Page, operation: Locator): Promise<{ status: number; body: any }> {
  const answered = page.waitForResponse((res) => res.url().includes('/api/v1/'));
  await operation.getByRole('button', { name: 'Execute' }).click();
  const res = await answered;
  return { status: res.status(), body: await res.json() };
}

describe('Swagger UI at /docs (browser)', () => {
  let b: BrowserApp;

  beforeAll(async () => {
    b = await startBrowserApp();
  });
  afterAll(() => b?.close());

  it('should upload with tags from "Try it out", the optional fields left blank, and list by tag', async () => {
    const { token } = await makeKey(b.t);
    const page = await b.newPage();
    await page.goto('/docs');
    await page
      .getByRole('button', { name: /Authorize/ })
      .first()
      .click();
    const dialog = page.locator('.modal-ux');
    await dialog.locator('input').first().fill(token); // the first scheme: apiKey
    await dialog.locator('button.authorize').first().click();
    await dialog.locator('button.btn-done').first().click();

    const upload = page.locator('#operations-Upload-upload');
    await tryItOut(upload);
    const fields = upload.locator('tr[data-property-name] input[type=text]');
    // Nothing the person did not type: no "string", no random match of the tags pattern.
    expect(await fields.evaluateAll((inputs) => inputs.map((i) => (i as { value: string }).value))).toEqual([
      '',
      '',
      '',
    ]);
    await upload.locator('input[type=file]').setInputFiles({
      name: 'a.png',
      mimeType: 'image/png',
      buffer: await png(61),
    });
    await upload.locator('tr[data-property-name="tags"] input[type=text]').fill('Logo, red');
    const uploaded = await execute(page, upload);
    expect(uploaded).toMatchObject({ status: 200, body: { ok: true, expires_at: null } });

    const list = page.locator('#operations-Uploads-listUploads');
    await tryItOut(list);
    const tag = list.locator('tr[data-param-name="tag"] input');
    await tag.fill('LOGO');
    expect(await execute(page, list)).toMatchObject({
      status: 200,
      body: { count: 1, uploads: [{ filename: uploaded.body.filename, tags: ['logo', 'red'] }] },
    });
    // A tag the service refuses is refused by the page, from the document's pattern, before any request.
    let sent = false;
    page.on('request', (req) => {
      sent ||= req.url().includes('/api/v1/uploads');
    });
    await tag.fill('a b');
    await list.getByRole('button', { name: 'Execute' }).click();
    await list.getByText(/For 'tag': Value must follow pattern/).waitFor();
    expect(sent).toBe(false);
  });
});
