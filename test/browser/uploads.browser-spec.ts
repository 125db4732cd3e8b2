import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import sharp from 'sharp';
import { ModerationService } from '../../src/modules/moderation/moderation.service';
import { writeColourModel } from '../fixtures/moderation/make-colour-model';
import { png, solid } from '../fixtures/sample-images';
import { bearer, makeKey, type TestKey } from '../setup/factories';
import { waitFor } from '../setup/wait';
import { type BrowserApp, expectAccessible, screenshots, startBrowserApp } from './harness';

// page.evaluate() bodies run in the browser; the root tsconfig has no DOM types.
declare const document: any, navigator: any, DataTransfer: any, ClipboardEvent: any, DragEvent: any;

/** A PNG of noise of about `mb` MB (stored, not compressed: noise does not compress anyway). */
async function bigPng(mb: number): Promise<Buffer> {
  const side = Math.ceil(Math.sqrt((mb * 1024 * 1024) / 3));
  return sharp(randomBytes(side * side * 3), { raw: { width: side, height: side, channels: 3 } })
    .png({ compressionLevel: 0 })
    .toBuffer();
}

/** Big files go to the browser as paths (a local Chromium reads them itself), not over the protocol. */
function fileOnDisk(dir: string, name: string, bytes: Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** Names of the uploads the gallery shows, in order. */
async function galleryNames(page: Page): Promise<string[]> {
  return page.locator('ul.gallery > li .upload-name').allTextContents();
}

/** Scrolls the gallery to its end (infinite scroll) until it says it has shown them all. */
async function scrollToEnd(page: Page): Promise<void> {
  const end = page.getByText(/^That is all of them/);
  for (let i = 0; i < 30 && !(await end.isVisible()); i++) {
    await page.mouse.wheel(0, 20000);
    await page.waitForTimeout(300);
  }
  await end.waitFor();
}

describe('Uploads in the browser: the upload panel and the gallery (browser)', () => {
  let b: BrowserApp;
  let modelDir: string;

  beforeAll(async () => {
    // The tiny colour model (test/fixtures/moderation): a red image is "Porn", noise and patterns are "Neutral".
    modelDir = mkdtempSync(join(tmpdir(), 'fxf-colour-model-'));
    const modelPath = await writeColourModel(join(modelDir, 'colour.onnx'));
    b = await startBrowserApp({
      env: {
        MODERATION_ENABLED: 'true',
        MODERATION_MODEL_PATH: modelPath,
        // 120+ uploads seeded in one test, and the gallery pages through them: limits out of the way.
        RATE_LIMIT_UPLOADS_PER_MINUTE: '1000',
        RATE_LIMIT_MANAGEMENT_PER_MINUTE: '10000',
        UPLOADS_IN_FLIGHT_PER_KEY: '8',
      },
    });
    await b.t.app.get(ModerationService).whenReady();
  });
  afterAll(async () => {
    await b?.close();
    rmSync(modelDir, { recursive: true, force: true });
  });

  /** Uploads `n` distinct small PNGs with the key, 8 at a time; returns their filenames. */
  async function seed(key: TestKey, n: number, from: number, tags?: string): Promise<string[]> {
    const names: string[] = [];
    for (let i = 0; i < n; i += 8) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(8, n - i) }, async (_, j) => {
          let req = b.t.http.post('/api/v1/upload').set(...bearer(key.token));
          if (tags) {
            req = req.field('tags', tags);
          }
          const res = await req.attach('file', await png(from + i + j), 'a.png');
          expect(res.status).toBe(200);
          return (res.body as { filename: string }).filename;
        }),
      );
      names.push(...batch);
    }
    return names;
  }

  it('should upload a 15 MB image with a moving progress bar, then show its link and delete link', async () => {
    const user = await b.makeUser();
    const page = await b.newPage({ clipboard: true });
    await b.signIn(page, user);
    await page.getByRole('heading', { name: 'Upload', exact: true }).waitFor();
    await expectAccessible(page, '/dashboard (empty)');
    // A slow uplink (CDP), so the progress is seen between 0 and 100 %.
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: 4 * 1024 * 1024,
    });
    const big = await bigPng(15);
    expect(big.length).toBeGreaterThan(15 * 1024 * 1024);
    expect(big.length).toBeLessThan(20 * 1024 * 1024);
    await page.getByLabel('Choose images to upload').setInputFiles(fileOnDisk(modelDir, 'big.png', big));
    const bar = page.getByRole('progressbar', { name: 'Upload progress of big.png' });
    const seen = new Set<number>();
    const link = page.getByRole('link', { name: /\/images\/FIXITFY-[A-Za-z0-9]{12}\.png$/ });
    for (let i = 0; i < 300 && !(await link.isVisible()); i++) {
      seen.add(Number(await bar.getAttribute('value')));
      await page.waitForTimeout(50);
    }
    await link.waitFor();
    await cdp.send('Network.emulateNetworkConditions', {
      offline: false,
      latency: 0,
      downloadThroughput: -1,
      uploadThroughput: -1,
    });
    const between = [...seen].filter((v) => v > 0 && v < 100);
    expect(between.length).toBeGreaterThanOrEqual(2);
    expect(await bar.getAttribute('value')).toBe('100');
    const url = await link.getAttribute('href');
    expect(url).toMatch(new RegExp(`^${b.baseUrl}/images/FIXITFY-`));
    await page.getByText('Delete link (shown once):').waitFor();
    await page.getByRole('button', { name: 'Copy delete link of big.png' }).click();
    const deleteUrl = await page.evaluate(() => navigator.clipboard.readText());
    expect(deleteUrl).toMatch(new RegExp(`^${b.baseUrl}/api/delete/`));
    // The gallery shows it (as a thumbnail) and the usage counts it.
    await page.getByRole('listitem', { name: url!.split('/').pop() }).waitFor();
    await page.getByLabel('Account usage').getByText('1 upload', { exact: false }).waitFor();
    await screenshots(page, 'dashboard-uploaded');
    const head = await fetch(url!, { method: 'HEAD' });
    expect(head.status).toBe(200);
  });

  it('should show the sentence for an oversized file, an unsupported file and an image the review rejects', async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    await b.signIn(page, user);
    await page
      .getByLabel('Choose images to upload')
      .setInputFiles([
        fileOnDisk(modelDir, 'huge.png', Buffer.alloc(20 * 1024 * 1024 + 1)),
        fileOnDisk(modelDir, 'notes.txt', Buffer.from('not an image at all\n')),
        fileOnDisk(modelDir, 'red.png', await solid({ r: 255, g: 0, b: 0 }, 64, 64)),
      ]);
    const row = (name: string) => page.getByRole('listitem').filter({ hasText: name });
    await row('huge.png').getByText('This file is over 20 MB, the largest upload allowed.').waitFor();
    await row('notes.txt')
      .getByText('This file is not an image we accept: use PNG, JPEG, GIF, WebP or AVIF.')
      .waitFor();
    await row('red.png').getByText('This image was rejected by the automated content review.').waitFor();
    await expectAccessible(page, '/dashboard with failed uploads');
    await screenshots(page, 'dashboard-upload-errors');
  });

  it('should page through 120 uploads showing each exactly once, with thumbnails only, and filter by tag', async () => {
    const key = await makeKey(b.t);
    // png(seed) differs for seeds that differ mod 256: 200–202 and 0–119 are 123 distinct images (no dedupe).
    const cats = await seed(key, 3, 200, 'cats,pets');
    const all = [...cats, ...(await seed(key, 120, 0))];
    expect(new Set(all).size).toBe(123);
    const page = await b.newPage({ viewport: { width: 1280, height: 6000 } });
    const originals: string[] = [];
    const thumbnails: string[] = [];
    page.on('request', (req) => {
      const url = new URL(req.url());
      if (url.pathname.startsWith('/images/')) {
        (url.search === '' ? originals : thumbnails).push(req.url());
      }
    });
    await b.signIn(page, key.user);
    await page.locator('ul.gallery > li').nth(49).waitFor();
    // The first page: 50 thumbnails rendered, every one of them loaded, and no original requested.
    expect(await page.locator('ul.gallery > li').count()).toBe(50);
    await page.waitForFunction(
      () => {
        const imgs: { complete: boolean; naturalWidth: number }[] = [
          ...document.querySelectorAll('ul.gallery img'),
        ];
        return imgs.length === 50 && imgs.every((img) => img.complete && img.naturalWidth > 0);
      },
      undefined,
      { timeout: 60_000 },
    );
    expect(thumbnails.length).toBeGreaterThanOrEqual(50);
    expect(originals).toEqual([]);
    await expectAccessible(page, '/dashboard gallery');

    await page.setViewportSize({ width: 1280, height: 800 });
    await scrollToEnd(page);
    const shown = await galleryNames(page);
    expect(shown.length).toBe(all.length);
    expect(new Set(shown).size).toBe(all.length);
    expect([...shown].sort()).toEqual([...all].sort());
    // Newest first: the first batch (the tagged three, uploaded before the rest) comes last, the last batch first.
    expect(shown.slice(-3).sort()).toEqual([...cats].sort());
    expect(all.slice(-8)).toContain(shown[0]);
    expect(originals).toEqual([]);

    const tagBox = page.getByRole('searchbox', { name: 'Tag' });
    await tagBox.fill('cats');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByRole('list', { name: 'Uploads tagged cats' }).waitFor();
    await page.getByText('That is all of them (3).').waitFor();
    expect((await galleryNames(page)).sort()).toEqual([...cats].sort());
    await page.getByRole('listitem', { name: cats[0] }).getByText('cats, pets').waitFor();

    // The filter is in the URL: a reload keeps it, back and forward move between it and all uploads.
    expect(new URL(page.url()).searchParams.get('tag')).toBe('cats');
    await page.reload();
    await page.getByRole('list', { name: 'Uploads tagged cats' }).waitFor();
    await expect(tagBox.inputValue()).resolves.toBe('cats');
    await page.goBack();
    await page.waitForURL((url) => url.pathname === '/dashboard' && !url.searchParams.has('tag'));
    await page.getByRole('list', { name: 'Your uploads' }).waitFor();
    await expect(tagBox.inputValue()).resolves.toBe('');
    await page.goForward();
    await page.getByRole('list', { name: 'Uploads tagged cats' }).waitFor();
    await expect(tagBox.inputValue()).resolves.toBe('cats');
    // A link with the tag opens the page filtered.
    await page.goto('/dashboard?tag=pets');
    await page.getByRole('list', { name: 'Uploads tagged pets' }).waitFor();
    await page.getByText('That is all of them (3).').waitFor();

    // A tag the server would refuse is told next to the field, as a sentence, and the URL keeps the last good one.
    await tagBox.fill('Not a tag!');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page
      .getByRole('search', { name: 'Filter by tag' })
      .getByText('A tag must be 1–32 characters of a-z, 0-9, "_" or "-".', { exact: true })
      .waitFor();
    await expect(tagBox.getAttribute('aria-invalid')).resolves.toBe('true');
    expect(new URL(page.url()).searchParams.get('tag')).toBe('pets');
    await expectAccessible(page, '/dashboard with a refused tag filter');
  });

  it('should upload what is pasted and what is dropped, with the tags given, in dark mode', async () => {
    const user = await b.makeUser();
    const page = await b.newPage({ colorScheme: 'dark' });
    await b.signIn(page, user);
    await page.getByLabel('Tags (optional)').fill('pasted,dropped');
    const [pasted, dropped] = await Promise.all([png(7001), png(7002)]);
    // What a browser hands the page for a paste of an image and for a file dropped on the drop zone.
    await page.evaluate(
      (bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], 'pasted.png', { type: 'image/png' }));
        document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true }));
      },
      [...pasted],
    );
    await page.evaluate(
      (bytes) => {
        const data = new DataTransfer();
        data.items.add(new File([new Uint8Array(bytes)], 'dropped.png', { type: 'image/png' }));
        const zone = document.querySelector('.dropzone')!;
        zone.dispatchEvent(
          new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }),
        );
        zone.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      },
      [...dropped],
    );
    const queue = page.getByRole('list', { name: 'Files being uploaded' });
    for (const name of ['pasted.png', 'dropped.png']) {
      await queue
        .getByRole('listitem')
        .filter({ hasText: name })
        .getByRole('link', { name: /\/images\// })
        .waitFor();
    }
    await page.getByText('That is all of them (2).').waitFor();
    expect(await page.locator('ul.gallery .upload-meta').allTextContents()).toEqual([
      expect.stringContaining('pasted, dropped'),
      expect.stringContaining('pasted, dropped'),
    ]);
    await expectAccessible(page, '/dashboard in dark mode');
    await screenshots(page, 'dashboard-dark');
  });

  it("should check the tags by the server's rules before sending, and tell a repeated upload for what it is", async () => {
    const user = await b.makeUser();
    const page = await b.newPage();
    const sent: string[] = [];
    page.on('request', (req) => {
      if (req.method() === 'POST' && new URL(req.url()).pathname === '/api/v1/upload') {
        sent.push(req.url());
      }
    });
    await b.signIn(page, user);
    const tags = page.getByLabel('Tags (optional)');
    const choose = async (name: string, seed: number) =>
      page
        .getByLabel('Choose images to upload')
        .setInputFiles({ name, mimeType: 'image/png', buffer: await png(seed) });

    // A bad tag: said next to the field (tied to it), and the file is not sent.
    await tags.fill('cats, Not OK!');
    await choose('first.png', 8101);
    const rule = 'Each tag must be 1–32 characters of a-z, 0-9, "_" or "-".';
    await page
      .getByRole('region', { name: 'Upload', exact: true })
      .getByText(rule, { exact: true })
      .waitFor();
    await expect(tags.getAttribute('aria-invalid')).resolves.toBe('true');
    // The sentence is the field's description (aria-describedby), so it is read with the field.
    const describedBy = ((await tags.getAttribute('aria-describedby')) ?? '').split(' ');
    const descriptions = await Promise.all(
      describedBy.map((id) => page.locator(`[id="${id}"]`).textContent()),
    );
    expect(descriptions).toContain(rule);
    await page.getByText('Not sent: fix the tags above, then add the file again.').waitFor();
    // Eleven tags: the server's limit is ten.
    await tags.fill('a,b,c,d,e,f,g,h,i,j,k');
    await choose('second.png', 8102);
    await page
      .getByRole('region', { name: 'Upload', exact: true })
      .getByText('At most 10 tags.', { exact: true })
      .waitFor();
    await expectAccessible(page, '/dashboard with refused tags');
    expect(sent).toEqual([]);

    // Good tags (upper case is fine: the server lower-cases them): sent, and the error is gone.
    await tags.fill('Cats,pets');
    await expect(tags.getAttribute('aria-invalid')).resolves.toBeNull();
    await choose('third.png', 8103);
    const queue = page.getByRole('list', { name: 'Files being uploaded' });
    const row = (name: string) => queue.getByRole('listitem').filter({ hasText: name });
    await row('third.png')
      .getByRole('link', { name: /\/images\// })
      .waitFor();
    await row('third.png').getByText('Delete link (shown once):').waitFor();
    expect(sent).toHaveLength(1);

    // The same bytes again: a dedupe hit gives the existing upload and its delete link, never "shown once".
    await choose('again.png', 8103);
    await row('again.png').getByText('You had already uploaded this image:').waitFor();
    await row('again.png').getByText('Its delete link:', { exact: true }).waitFor();
    expect(await row('again.png').getByText('shown once').count()).toBe(0);
    expect(await row('again.png').getByRole('link').getAttribute('href')).toBe(
      await row('third.png').getByRole('link').getAttribute('href'),
    );
  });

  it('should delete from the gallery after a confirmation, and the direct link is then 404', async () => {
    const key = await makeKey(b.t);
    const [first, second] = await seed(key, 2, 5000);
    const page = await b.newPage({ viewport: { width: 375, height: 740 } });
    await b.signIn(page, key.user);
    const card = page.getByRole('listitem', { name: first });
    await card.waitFor();
    const url = `${b.baseUrl}/images/${first}`;
    expect((await fetch(url)).status).toBe(200);
    await card.getByRole('button', { name: `Delete ${first}` }).click();
    const confirm = page.getByRole('alertdialog', { name: `Delete ${first}?` });
    await confirm.waitFor();
    await expectAccessible(page, 'the delete confirmation at 375 px');
    await screenshots(page, 'dashboard-delete-confirm');
    await confirm.getByRole('button', { name: 'Delete upload' }).click();
    await confirm.waitFor({ state: 'hidden' });
    await card.waitFor({ state: 'detached' });
    await page.getByRole('listitem', { name: second }).waitFor();
    // Its Delete button is gone: focus moves to the upload that took its place, never to <body>.
    await waitFor(`focus on the card of ${second}`, () =>
      page.getByRole('listitem', { name: second }).evaluate((el) => el === document.activeElement),
    );
    // The last one: focus goes to the gallery's heading.
    await page.getByRole('button', { name: `Delete ${second}` }).click();
    await page
      .getByRole('alertdialog', { name: `Delete ${second}?` })
      .getByRole('button', { name: 'Delete upload' })
      .click();
    await page.getByText('No uploads yet', { exact: false }).waitFor();
    await waitFor('focus on the gallery heading', () =>
      page.getByRole('heading', { name: 'Your uploads' }).evaluate((el) => el === document.activeElement),
    );
    const gone = await fetch(url);
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { code: string }).code).toBe('not_found');
  });

  it('should give the focus to the first upload "Load more" added, and to the tag field when "Show all" goes', async () => {
    const key = await makeKey(b.t);
    await seed(key, 51, 300);
    const page = await b.newPage();
    await b.signIn(page, key.user);
    const cards = page.getByRole('list', { name: 'Your uploads' }).getByRole('listitem');
    await cards.nth(49).waitFor();
    // Reaching the button scrolls it in (the gallery then loads by itself); Enter, if it is still there, loads too.
    await page.getByRole('button', { name: 'Load more' }).focus();
    await page.keyboard.press('Enter');
    await page.getByText('That is all of them (51).').waitFor();
    // The last page took the button away: focus is on the 51st upload, not <body>.
    await waitFor('focus on the 51st upload', () =>
      cards.nth(50).evaluate((el) => el === document.activeElement),
    );

    await page.goto('/dashboard?tag=nothing-here');
    await page.getByText('No uploads tagged “nothing-here”.').waitFor();
    await page.getByRole('button', { name: 'Show all' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL((url) => url.pathname === '/dashboard' && !url.searchParams.has('tag'));
    await page.getByRole('button', { name: 'Show all' }).waitFor({ state: 'detached' });
    const tagBox = page.getByRole('searchbox', { name: 'Tag' });
    await waitFor('focus on the tag field', () => tagBox.evaluate((el) => el === document.activeElement));
    await expect(tagBox.inputValue()).resolves.toBe('');
  });
});
