import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Locator, Page } from 'playwright-core';
import { Clock } from '../../src/common/time/clock';
import { png } from '../fixtures/sample-images';
import { makeKey } from '../setup/factories';
import { waitFor } from '../setup/wait';
import { Receiver, type ReceivedRequest, verifyPublished } from '../e2e/webhooks-receiver';
import { type BrowserApp, DESKTOP, expectAccessible, PHONE, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any;

/** The element that has the keyboard focus now, as "<tag>#<id>: <its text>". */
function focused(page: Page): Promise<string> {
  return page.evaluate(() => {
    const el = document.activeElement;
    return el
      ? `${String(el.tagName).toLowerCase()}#${String(el.id)}: ${String(el.textContent).trim().slice(0, 80)}`
      : 'none';
  });
}

/**
 * Waits until `target` has the keyboard focus; fails naming where it is instead (<body> when a pressed button went
 * away or was disabled and nothing took the focus).
 */
async function expectFocusOn(page: Page, target: Locator, what: string): Promise<void> {
  const onTarget = await waitFor(`focus on ${what}`, () =>
    target.evaluate((el) => el === document.activeElement),
  ).catch(async (err: Error) => {
    throw new Error(`${err.message}; it is on ${await focused(page)}`);
  });
  expect(onTarget).toBe(true);
  expect(await focused(page)).not.toMatch(/^body#/);
}

/** Presses Enter on `button`, as a keyboard user does. */
async function pressWithKeyboard(page: Page, button: Locator): Promise<void> {
  await button.focus();
  await page.keyboard.press('Enter');
}

/**
 * Runs the verification code exactly as the page shows it (its import line gives the two functions) against a
 * request the receiver got: the snippet a person copies from the page must accept a real delivery.
 */
function runShownSnippet(snippet: string, req: ReceivedRequest, secret: string): boolean {
  const lines = snippet.split('\n');
  expect(lines[0]).toBe('import { createHmac, timingSafeEqual } from "node:crypto";');
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the snippet is the test's subject
  const run = new Function(
    'createHmac',
    'timingSafeEqual',
    'Buffer',
    'req',
    'rawBody',
    'SIGNING_SECRET',
    `${lines.slice(1).join('\n')}\nreturn valid;`,
  ) as (...args: unknown[]) => boolean;
  return run(createHmac, timingSafeEqual, Buffer, { headers: req.headers }, req.rawBody, secret);
}

/** Real time plus a jump: lets an endpoint go "days" without a success in a few seconds. */
class ShiftedClock extends Clock {
  offset = 0;

  override now(): number {
    return Date.now() + this.offset;
  }
}

async function uploadWithKey(
  b: BrowserApp,
  token: string,
  seed: number,
): Promise<{ filename: string; hash_sha256: string }> {
  // The published Node (fetch) snippet, against this server.
  const fd = new FormData();
  fd.set('file', new Blob([new Uint8Array(await png(seed))], { type: 'image/png' }), 'screenshot.png');
  const res = await fetch(`${b.baseUrl}/api/v1/upload`, {
    method: 'POST',
    headers: { Authorization: 'Bearer ' + token },
    body: fd,
  });
  expect(res.status).toBe(200);
  return (await res.json()) as { filename: string; hash_sha256: string };
}

async function revealSecret(page: Page): Promise<string> {
  const panel = page.getByRole('region', { name: 'Signing secret' });
  await panel.getByRole('button', { name: 'Reveal secret' }).click();
  const code = panel.locator('code');
  await code.waitFor();
  return (await code.textContent()) ?? '';
}

jest.setTimeout(180_000);

describe('Webhooks page (browser)', () => {
  let b: BrowserApp;
  let receiver: Receiver;
  const clock = new ShiftedClock();

  beforeAll(async () => {
    receiver = await Receiver.start();
    // The receiver listens on 127.0.0.1: the operator setting that lets webhooks reach private addresses.
    b = await startBrowserApp({
      env: {
        ALLOW_PRIVATE_WEBHOOKS: 'true',
        WEBHOOK_RETRY_BASE_MS: '200',
        WEBHOOK_RETRY_MAX_DELAY_MS: '1000',
        WEBHOOK_MAX_ATTEMPTS: '100',
        WEBHOOK_DISABLE_MIN_FAILURES: '3',
      },
      overrides: [{ provide: Clock, useValue: clock }],
    });
  });
  afterAll(async () => {
    await b?.close();
    await receiver?.close();
  });

  it('should register an endpoint, ping it, deliver a correctly signed upload.created and show the delivery', async () => {
    const user = await b.makeUser();
    const page = await b.newPage({ clipboard: true });
    await b.signIn(page, user, '/dashboard/webhooks');
    await page.getByRole('heading', { level: 1, name: 'Webhooks' }).waitFor();
    await page.getByText('No endpoints yet.').waitFor();
    await expectAccessible(page, '/dashboard/webhooks (empty)');

    // A bad URL is refused with the server's sentence, tied to the form.
    const url = page.getByLabel('Endpoint URL');
    await url.fill('ftp://example.com/hook');
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    await page.getByText('Enter a URL that starts with https:// or http://.').waitFor();
    await expect(url.getAttribute('aria-invalid')).resolves.toBe('true');

    const secret = await revealSecret(page);
    expect(secret).toMatch(/^whsec_/);
    // The copy button puts exactly the secret on the clipboard.
    await page.getByRole('button', { name: 'Copy signing secret' }).click();
    await page.getByText('Copied to the clipboard.').waitFor();
    await expect(page.evaluate<string>('navigator.clipboard.readText()')).resolves.toBe(secret);

    await url.fill(receiver.url('/browser'));
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const endpoint = page.getByRole('article', { name: receiver.url('/browser') });
    await endpoint.waitFor();
    await endpoint.getByText('Enabled: events are sent to it.').waitFor();
    await expect(url.inputValue()).resolves.toBe('');

    // Every endpoint has the same buttons: each one's name says which endpoint it acts on.
    const hookUrl = receiver.url('/browser');
    for (const name of [`Disable ${hookUrl}`, `Send test ping to ${hookUrl}`, `Delete endpoint ${hookUrl}`]) {
      await endpoint.getByRole('button', { name, exact: true }).waitFor();
    }
    // Send test ping: a signed ping reaches the receiver and the page says how it went.
    await endpoint.getByRole('button', { name: `Send test ping to ${hookUrl}`, exact: true }).click();
    await endpoint.getByText(/^Ping delivered: answered 200 in \d+ (ms|s)\.$/).waitFor();
    const ping = receiver.requests.find((r) => r.headers['x-fixitfy-event'] === 'ping');
    expect(ping).toBeDefined();
    expect(verifyPublished(ping!, ping!.rawBody, secret)).toBe(true);

    // An upload through the API (the published fetch snippet, with a key) fires upload.created.
    const key = await makeKey(b.t, user);
    const uploaded = await uploadWithKey(b, key.token, 4242);
    const created = await waitFor('the upload.created delivery', () =>
      receiver.requests.find((r) => r.headers['x-fixitfy-event'] === 'upload.created'),
    );
    expect(created.path).toBe('/browser');
    const body = JSON.parse(created.rawBody.toString('utf8')) as {
      event: string;
      upload: { filename: string; hash_sha256: string };
    };
    expect(body.event).toBe('upload.created');
    expect(body.upload).toMatchObject({ filename: uploaded.filename, hash_sha256: uploaded.hash_sha256 });
    // Signed with the secret the page showed: checked by the published snippet, and by the code on the page.
    expect(verifyPublished(created, created.rawBody, secret)).toBe(true);
    const shown = await page
      .getByRole('region', { name: 'Verify the signature' })
      .locator('pre')
      .textContent();
    expect(runShownSnippet(shown ?? '', created, secret)).toBe(true);
    expect(runShownSnippet(shown ?? '', created, `${secret}x`)).toBe(false);

    // The delivery appears on the open page (it polls), with its status code, next to the ping.
    const deliveries = endpoint.getByRole('table', {
      name: `Recent deliveries to ${receiver.url('/browser')}`,
    });
    const row = deliveries.getByRole('row').filter({ hasText: 'upload.created' });
    await row.waitFor({ timeout: 20_000 });
    const cells = await row.getByRole('cell').allTextContents();
    expect(cells.slice(0, 4)).toEqual(['upload.created', '1', 'Delivered', '200']);
    expect(cells[5]).toBe('—');
    await deliveries.getByRole('row').filter({ hasText: 'ping' }).waitFor();
    // Failures in a row, last success, last failure, added.
    const stats = await endpoint.getByRole('definition').allTextContents();
    expect(stats[0]).toBe('0');
    expect(stats[1]).not.toBe('never');
    expect(stats[2]).toBe('never');

    await expectAccessible(page, '/dashboard/webhooks (with an endpoint and deliveries)');

    // On a phone the page never scrolls sideways: the deliveries table scrolls inside its own region, which the
    // keyboard can reach (it is focusable and named).
    await page.setViewportSize(PHONE);
    await expect(
      page.evaluate(() => document.documentElement.scrollWidth as number),
    ).resolves.toBeLessThanOrEqual(PHONE.width);
    const scroller = endpoint.getByRole('region', { name: `Recent deliveries to ${hookUrl}` });
    const box = await scroller.evaluate((el: any) => ({
      scrolls: (el.scrollWidth as number) > (el.clientWidth as number),
      tabIndex: el.tabIndex as number,
    }));
    expect(box).toEqual({ scrolls: true, tabIndex: 0 });
    await expectAccessible(page, '/dashboard/webhooks at 375 px');
    await page.setViewportSize(DESKTOP);

    // Hidden again before the screenshot (which the README shows).
    await page.getByRole('button', { name: 'Hide' }).click();
    await page.getByText('Signing secret hidden').waitFor();
    await screenshots(page, 'webhooks');
  });

  it('should show a failing endpoint with its error, failure count, and turn it off and on again', async () => {
    const failing = await Receiver.start((_n, _req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    try {
      const user = await b.makeUser();
      const page = await b.newPage();
      await b.signIn(page, user, '/dashboard/webhooks');
      await page.getByLabel('Endpoint URL').fill(failing.url('/down'));
      await page.getByRole('button', { name: 'Add endpoint' }).click();
      const endpoint = page.getByRole('article', { name: failing.url('/down') });
      await endpoint.getByRole('button', { name: `Send test ping to ${failing.url('/down')}` }).click();
      // The receiver's own answer is part of the error, shown as text.
      await endpoint.getByText('Ping failed: HTTP 500: down.').waitFor();
      const row = endpoint.getByRole('row').filter({ hasText: 'ping' });
      // The deliveries table refetches after the ping's answer: wait for its row before reading it (read at once,
      // it was sometimes still empty).
      await row.first().waitFor();
      const cells = await row.getByRole('cell').allTextContents();
      expect(cells.slice(0, 4)).toEqual(['ping', '1', 'Failed', '500']);
      expect(cells[5]).toBe('HTTP 500: down');
      // Failures in a row: 1, last failure set.
      const stats = endpoint.getByRole('definition');
      await expect(stats.first().textContent()).resolves.toBe('1');

      await endpoint.getByRole('button', { name: 'Disable' }).click();
      await endpoint.getByText(/^Turned off on .+: nothing is sent until you enable it again\.$/).waitFor();
      await endpoint.getByRole('button', { name: 'Enable' }).click();
      await endpoint.getByText('Enabled: events are sent to it.').waitFor();
      // Re-enabling is a fresh start: the failure streak is forgotten.
      await expect(stats.first().textContent()).resolves.toBe('0');
    } finally {
      await failing.close();
    }
  });

  it("should end a failed ping's sentence with one full stop when the error has its own", async () => {
    // Nothing listens there any more: the sender's error is "Connection failed: ECONNREFUSED." (its own full stop).
    const gone = await Receiver.start();
    const url = gone.url('/closed');
    await gone.close();
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/webhooks');
    await page.getByLabel('Endpoint URL').fill(url);
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const endpoint = page.getByRole('article', { name: url });
    await endpoint.getByRole('button', { name: `Send test ping to ${url}`, exact: true }).click();
    const result = endpoint.getByRole('status').filter({ hasText: /^Ping failed: / });
    await result.waitFor();
    const text = (await result.textContent()) ?? '';
    expect(text).toMatch(/^Ping failed: Connection failed: ECONNREFUSED\.$/);
    expect(text).not.toMatch(/\.\.$/);
  });

  it('should rotate the secret after a confirmation and delete an endpoint after a confirmation', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/webhooks');
    const before = await revealSecret(page);

    await page.getByRole('button', { name: 'Rotate secret' }).click();
    const rotate = page.getByRole('alertdialog', { name: 'Rotate the signing secret?' });
    await rotate.waitFor();
    // Cancel has the focus first, so Enter never rotates by accident.
    await expect(page.evaluate<string>('document.activeElement.textContent')).resolves.toBe('Cancel');
    await expectAccessible(page, 'rotate secret dialog');
    await rotate.getByRole('button', { name: 'Cancel' }).click();
    await rotate.waitFor({ state: 'hidden' });
    await expect(
      page.getByRole('region', { name: 'Signing secret' }).locator('code').textContent(),
    ).resolves.toBe(before);

    await page.getByRole('button', { name: 'Rotate secret' }).click();
    await rotate.getByRole('button', { name: 'Rotate secret' }).click();
    await rotate.waitFor({ state: 'hidden' });
    await page.getByText('A new signing secret is in use.', { exact: false }).waitFor();
    const after = await page.getByRole('region', { name: 'Signing secret' }).locator('code').textContent();
    expect(after).toMatch(/^whsec_/);
    expect(after).not.toBe(before);
    // The server agrees: deliveries are now signed with the shown secret.
    const secretRes = await page.request.get('/api/v1/webhooks/secret');
    expect(((await secretRes.json()) as { signing_secret: string }).signing_secret).toBe(after);

    await page.getByLabel('Endpoint URL').fill(receiver.url('/gone'));
    await page.getByLabel('Enabled').uncheck();
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const endpoint = page.getByRole('article', { name: receiver.url('/gone') });
    await endpoint.getByText(/^Turned off on /).waitFor();
    await endpoint
      .getByRole('button', { name: `Delete endpoint ${receiver.url('/gone')}`, exact: true })
      .click();
    const confirm = page.getByRole('alertdialog', { name: 'Delete this endpoint?' });
    await confirm.waitFor();
    await expectAccessible(page, 'delete endpoint dialog');
    await screenshots(page, 'webhooks-delete-dialog');
    await confirm.getByRole('button', { name: 'Delete endpoint' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await endpoint.waitFor({ state: 'detached' });
    await page.getByText('No endpoints yet.').waitFor();
    // Its Delete button went with it: focus is on the endpoints' heading, not lost to <body>.
    await waitFor(
      'focus on the Endpoints heading',
      async () => (await focused(page)) === 'h2#endpoints-title: Endpoints',
    );
    const list = await page.request.get('/api/v1/webhooks');
    expect(((await list.json()) as { webhooks: unknown[] }).webhooks).toEqual([]);
  });

  it('should keep the keyboard focus on the page when a pressed button is replaced, taken away or busy', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user, '/dashboard/webhooks');
    const panel = page.getByRole('region', { name: 'Signing secret' });

    // Reveal secret gives way to Copy and Hide: focus goes to Copy; Hide gives way to Reveal secret.
    await pressWithKeyboard(page, panel.getByRole('button', { name: 'Reveal secret' }));
    await panel.locator('code').waitFor();
    await expectFocusOn(
      page,
      panel.getByRole('button', { name: 'Copy signing secret' }),
      'Copy signing secret',
    );
    await pressWithKeyboard(page, panel.getByRole('button', { name: 'Hide' }));
    await panel.getByText('Signing secret hidden').waitFor();
    await expectFocusOn(page, panel.getByRole('button', { name: 'Reveal secret' }), 'Reveal secret');

    const hookUrl = receiver.url('/focus');
    await page.getByLabel('Endpoint URL').fill(hookUrl);
    await page.getByRole('button', { name: 'Add endpoint' }).click();
    const endpoint = page.getByRole('article', { name: hookUrl });
    await endpoint.waitFor();

    // Save events goes once the boxes match what is saved: focus goes to the sentence that says so.
    await endpoint.getByRole('checkbox', { name: /^upload\.deleted/ }).check();
    await pressWithKeyboard(page, endpoint.getByRole('button', { name: `Save events of ${hookUrl}` }));
    const saved = endpoint
      .getByRole('status')
      .filter({ hasText: 'Saved: it now gets upload.created, upload.deleted.' });
    await saved.waitFor();
    await endpoint.getByRole('button', { name: `Save events of ${hookUrl}` }).waitFor({ state: 'detached' });
    await expectFocusOn(page, saved, 'the "Saved" status');

    // Buttons that are disabled while they work (which takes the focus off them) get it back.
    await page.getByLabel('Endpoint URL').fill(receiver.url('/second'));
    await pressWithKeyboard(page, page.getByRole('button', { name: 'Add endpoint' }));
    await page
      .getByRole('status')
      .filter({ hasText: `Added ${receiver.url('/second')}.` })
      .waitFor();
    await expectFocusOn(page, page.getByRole('button', { name: 'Add endpoint' }), 'Add endpoint');
    const ping = endpoint.getByRole('button', { name: `Send test ping to ${hookUrl}`, exact: true });
    await pressWithKeyboard(page, ping);
    await endpoint.getByText(/^Ping delivered: /).waitFor();
    await expectFocusOn(page, ping, 'Send test ping');
    await pressWithKeyboard(page, endpoint.getByRole('button', { name: `Disable ${hookUrl}`, exact: true }));
    await endpoint.getByText(/^Turned off on /).waitFor();
    await expectFocusOn(
      page,
      endpoint.getByRole('button', { name: `Enable ${hookUrl}`, exact: true }),
      'Enable',
    );
    await pressWithKeyboard(page, endpoint.getByRole('button', { name: `Enable ${hookUrl}`, exact: true }));
    await endpoint.getByText('Enabled: events are sent to it.').waitFor();
    // The redelivery adds a row above it: its own button (by its full name) gets the focus back.
    const redeliverName = await endpoint
      .getByRole('button', { name: /^Redeliver ping attempt 1 / })
      .first()
      .getAttribute('aria-label');
    const redeliver = endpoint.getByRole('button', { name: redeliverName ?? '', exact: true });
    await pressWithKeyboard(page, redeliver);
    await endpoint.getByText(/^Redelivered ping /).waitFor();
    await expectFocusOn(page, redeliver, 'Redeliver');

    // Show older deliveries goes with the last page: focus goes to the first delivery it added (its Redeliver).
    const session = (await (await page.request.get('/api/v1/auth/session')).json()) as { csrf_token: string };
    const hooks = (await (await page.request.get('/api/v1/webhooks')).json()) as {
      webhooks: { id: string; url: string }[];
    };
    const hookId = hooks.webhooks.find((h) => h.url === hookUrl)?.id;
    for (let i = 0; i < 10; i++) {
      const res = await page.request.post(`/api/v1/webhooks/${hookId}/test`, {
        headers: { 'X-CSRF-Token': session.csrf_token },
      });
      expect(res.status()).toBe(200);
    }
    const older = endpoint.getByRole('button', { name: `Show older deliveries to ${hookUrl}` });
    await older.waitFor({ timeout: 20_000 });
    await pressWithKeyboard(page, older);
    const table = endpoint.getByRole('region', { name: `Recent deliveries to ${hookUrl}` });
    // Twelve deliveries and the header row; the button (named "Loading…" while it loads) is gone.
    await waitFor('all twelve deliveries', async () => (await table.getByRole('row').count()) === 13);
    await expect(
      endpoint.getByRole('button', { name: /^(Show older deliveries|Loading…)/ }).count(),
    ).resolves.toBe(0);
    const eleventh = table
      .getByRole('row')
      .nth(11)
      .getByRole('button', { name: /^Redeliver / });
    await expectFocusOn(page, eleventh, 'the Redeliver button of the 11th delivery');
  });

  it('should say when and why an endpoint was disabled automatically, and enable it again', async () => {
    const failing = await Receiver.start((_n, _req, res) => {
      res.statusCode = 503;
      res.end();
    });
    try {
      const user = await b.makeUser();
      const page = await b.newPage();
      await b.signIn(page, user, '/dashboard/webhooks');
      await page.getByLabel('Endpoint URL').fill(failing.url('/flaky'));
      await page.getByRole('button', { name: 'Add endpoint' }).click();
      const endpoint = page.getByRole('article', { name: failing.url('/flaky') });
      await endpoint.waitFor();
      const key = await makeKey(b.t, user);
      await uploadWithKey(b, key.token, 5151);
      // Failures within minutes leave it on; days of them (the clock jumps) turn it off at the next failure.
      await waitFor('three failed attempts', () => failing.requests.length >= 3);
      await endpoint.getByText('Enabled: events are sent to it.').waitFor();
      clock.offset += 3 * 24 * 3600_000 + 60_000;
      await endpoint
        .getByText(/^Disabled automatically on .+: no delivery succeeded for days\./)
        .waitFor({ timeout: 30_000 });
      const stats = await endpoint.getByRole('definition').allTextContents();
      expect(Number(stats[0])).toBeGreaterThanOrEqual(3);
      expect(stats[1]).toBe('never');
      await expectAccessible(page, '/dashboard/webhooks (auto-disabled endpoint)');
      await screenshots(page, 'webhooks-auto-disabled');

      await endpoint.getByRole('button', { name: 'Enable' }).click();
      await endpoint.getByText('Enabled: events are sent to it.').waitFor();
    } finally {
      await failing.close();
    }
  });
});
