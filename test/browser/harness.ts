import AxeBuilder from '@axe-core/playwright';
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { UsersService } from '../../src/modules/auth/users.service';
import { makeUser, type TestUser } from '../setup/factories';
import { createTestApp, type TestApp, type TestAppOptions } from '../setup/test-app';
import { ensureWebBuilt } from '../setup/web-build';

// A browser test drives a real app and a real browser on a busy 2-core machine: minutes, not jest's default.
jest.setTimeout(240_000);

/** Debian's Chromium (`apt-get install -y chromium`); Playwright cannot download its own browsers here. */
export const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
];
/** Screenshots of the pages (gitignored; the README shows a few current ones). */
export const SCREENSHOT_DIR = join(__dirname, '..', '..', 'test-results', 'screenshots');
export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 375, height: 740 };

/** A free loopback port: PUBLIC_URL must name the port the app listens on (the API's URLs are absolute). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export interface BrowserApp {
  /** The real app (real PostgreSQL and Redis), as createTestApp makes it. */
  t: TestApp;
  /** http://127.0.0.1:<port>, also the app's PUBLIC_URL. */
  baseUrl: string;
  browser: Browser;
  /** A page in a fresh browser context (its own cookies), closed with the harness. */
  newPage(options?: {
    viewport?: { width: number; height: number };
    clipboard?: boolean;
    colorScheme?: 'light' | 'dark';
  }): Promise<Page>;
  /** A user made through the real UsersService (unique email; password `correct horse battery`). */
  makeUser(role?: 'user' | 'admin'): Promise<TestUser>;
  /** Makes an existing account an admin (as `npm run cli -- user:create --admin` would). */
  makeAdmin(email: string): Promise<void>;
  /** Signs in through the /login form and waits for the dashboard (or `next`). */
  signIn(page: Page, user: TestUser, next?: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * One app and one Chromium for a spec file: builds the website if it is stale, starts the real app on a free
 * port and launches Chromium with a fresh profile (Playwright's launch makes a new temporary user-data-dir each
 * time). Fails, never skips, when Chromium is missing.
 */
export async function startBrowserApp(options: TestAppOptions = {}): Promise<BrowserApp> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}: install it with \`apt-get install -y chromium\`.`,
    );
  }
  ensureWebBuilt();
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const t = await createTestApp({ ...options, port, env: { PUBLIC_URL: baseUrl, ...options.env } });
  let browser: Browser;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  } catch (err) {
    await t.close();
    throw err;
  }
  const contexts: BrowserContext[] = [];

  return {
    t,
    baseUrl,
    browser,
    async newPage({ viewport = DESKTOP, clipboard = false, colorScheme = 'light' } = {}) {
      const context = await browser.newContext({
        baseURL: baseUrl,
        viewport,
        colorScheme,
        permissions: clipboard ? ['clipboard-read', 'clipboard-write'] : [],
      });
      contexts.push(context);
      const page = await context.newPage();
      page.setDefaultTimeout(15_000);
      return page;
    },
    makeUser: (role = 'user') => makeUser(t, role),
    async makeAdmin(email) {
      await t.app.get(UsersService).setRole(email, 'admin');
    },
    async signIn(page, user, next) {
      await page.goto(next ? `/login?next=${encodeURIComponent(next)}` : '/login');
      await page.getByLabel('Email').fill(user.email);
      await page.getByLabel('Password').fill(user.password);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL((url) => url.pathname === (next ?? '/dashboard').split('?')[0]);
    },
    async close() {
      for (const context of contexts) {
        await context.close().catch(() => undefined);
      }
      await browser.close().catch(() => undefined);
      await t.close();
    },
  };
}

/**
 * axe-core on what the page shows now (an open dialog included): fails with the rule, its impact and the first
 * offending elements when any serious or critical violation is found.
 */
export async function expectAccessible(page: Page, what: string): Promise<void> {
  const results = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length > 0) {
    const lines = bad.map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help} — ${v.nodes
          .slice(0, 3)
          .map((n) => n.target.join(' '))
          .join(', ')}`,
    );
    throw new Error(
      `${what}: ${bad.length} serious/critical accessibility violation(s):\n${lines.join('\n')}`,
    );
  }
}

/** Saves `<name>-desktop.png` and `<name>-375.png` of the page as it is now, then restores the viewport. */
export async function screenshots(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const before = page.viewportSize() ?? DESKTOP;
  for (const [suffix, size] of [
    ['desktop', DESKTOP],
    ['375', PHONE],
  ] as const) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${suffix}.png`), fullPage: true });
  }
  await page.setViewportSize(before);
}
