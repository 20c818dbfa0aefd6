import fs from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';

// Debian's chromium, installed by scripts/services.sh up; the tests never download a browser.
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve(import.meta.dirname, '../../test-results/demo.png');

describe('demo inbox page in Chromium', () => {
  const dataDir = tempDir('minipush-demo-');
  const profileDir = tempDir('minipush-chromium-');
  let server: MiniPushProcess;
  let context: BrowserContext;
  const problems: string[] = [];
  const sockets = new Map<Page, number>();

  beforeAll(async () => {
    server = await spawnMiniPush({
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '-1',
      MINIPUSH_NUDGE_WINDOW: '20ms',
    });
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-gpu',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--disable-quic',
      ],
      viewport: { width: 900, height: 760 },
    });
  });

  afterAll(async () => {
    await context?.close();
    await server?.kill();
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(profileDir, { recursive: true, force: true });
  });

  async function openTab(uid: number): Promise<Page> {
    const page = await context.newPage();
    sockets.set(page, 0);
    page.on('websocket', () => sockets.set(page, sockets.get(page)! + 1));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`${response.status()} ${response.url()}`);
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    await page.goto(`${server.url}/demo`);
    await page.fill('#uid', String(uid));
    await page.click('#login-form button[type=submit]');
    await until(() => page.textContent('#status'), 'connected');
    return page;
  }

  const badge = (page: Page) => page.textContent('#badge');
  const items = (page: Page) =>
    page.$$eval('#list li', (lis) =>
      lis.map(
        (li) =>
          `${li.getAttribute('data-seq')}:${li.className}:${li.querySelector('.text')?.textContent}`,
      ),
    );
  async function until(what: () => unknown, expected: unknown) {
    await expect.poll(what, { timeout: 15_000 }).toEqual(expected);
  }

  async function publishFrom(page: Page, text: string) {
    await page.fill('#text', text);
    await page.click('#publish-form button[type=submit]');
    await until(() => page.textContent('#publish-status'), 'published');
    // Clear it so the next publish is judged by its own answer.
    await page.$eval('#publish-status', (status) => {
      status.textContent = '';
    });
  }

  it('should share one socket between two tabs and keep their lists and badges in step', async () => {
    const uid = 4242;
    const first = await openTab(uid);
    expect(await first.getAttribute('#role', 'data-role')).toBe('leader');
    // Chromium has Web Locks, so the tabs elect with them rather than the channel fallback.
    expect(await first.getAttribute('#role', 'data-election')).toBe('web-locks');
    const second = await openTab(uid);
    await until(() => second.getAttribute('#role', 'data-role'), 'follower');
    expect(sockets.get(first)).toBe(1);
    expect(sockets.get(second)).toBe(0);
    // The page filled the publish form with the generated dev API key.
    expect(await first.inputValue('#api-key')).toMatch(/^mp_dev_/);

    await publishFrom(first, 'first');
    for (const tab of [first, second]) {
      await until(() => items(tab), ['1:unread:first']);
      await until(() => badge(tab), '1');
    }
    await publishFrom(second, 'second');
    await publishFrom(second, 'third');
    for (const tab of [first, second]) {
      await until(() => items(tab), ['3:unread:third', '2:unread:second', '1:unread:first']);
      await until(() => badge(tab), '3');
    }

    // A click in the follower goes through the leader's socket; both tabs follow.
    await second.click('#list li[data-seq="2"]');
    for (const tab of [first, second]) {
      await until(() => badge(tab), '2');
      await until(() => items(tab), ['3:unread:third', '2:read:second', '1:unread:first']);
    }

    await first.click('#mark-all');
    for (const tab of [first, second]) {
      await until(() => badge(tab), '0');
      await until(() => items(tab), ['3:read:third', '2:read:second', '1:read:first']);
    }

    await publishFrom(second, 'fourth, still unread');
    for (const tab of [first, second]) await until(() => badge(tab), '1');
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await first.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(fs.statSync(SCREENSHOT).size).toBeGreaterThan(10_000);
    // Still one socket for the browser after all of that.
    expect([sockets.get(first), sockets.get(second)]).toEqual([1, 0]);

    // The leader tab goes away: the other takes the socket over and catches up.
    await first.close();
    await until(() => second.getAttribute('#role', 'data-role'), 'leader');
    await until(() => sockets.get(second), 1);
    await until(() => second.textContent('#status'), 'connected');
    await publishFrom(second, 'fifth');
    await until(() => badge(second), '2');
    await until(
      () => items(second),
      [
        '5:unread:fifth',
        '4:unread:fourth, still unread',
        '3:read:third',
        '2:read:second',
        '1:read:first',
      ],
    );
    expect(problems).toEqual([]);
  });
});
