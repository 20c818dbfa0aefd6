import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';

// Debian's chromium, installed by scripts/services.sh up; the tests never download a browser.
const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = path.resolve(import.meta.dirname, '../../test-results/demo.png');
// The inbox with its badge, bold unread items and archive buttons, to look at (not kept in git).
const INBOX_SCREENSHOT = path.join(os.tmpdir(), 'demo-inbox.png');
// The page's own, in functions that run there (the tests compile without the DOM library).
declare const getComputedStyle: (element: unknown) => { readonly fontWeight: string };

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

    // Opening the inbox in the follower marks all seen through the leader: both badges clear,
    // and the items stay unread.
    expect(await second.isVisible('#list')).toBe(false);
    await second.click('#bell');
    for (const tab of [first, second]) await until(() => badge(tab), '0');
    expect(await items(first)).toEqual(['3:unread:third', '2:unread:second', '1:unread:first']);

    // A click in the follower goes through the leader's socket; both tabs follow.
    await second.click('#list li[data-seq="2"] .text');
    for (const tab of [first, second]) {
      await until(() => tab.textContent('#unread-count'), '2');
      await until(() => items(tab), ['3:unread:third', '2:read:second', '1:unread:first']);
    }

    await first.click('#mark-all');
    for (const tab of [first, second]) {
      await until(() => tab.textContent('#unread-count'), '0');
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

  it('should badge unseen events, clear the badge on opening, bold unread items and archive them', async () => {
    const uid = 4343;
    const page = await openTab(uid);
    const weight = (seq: number) =>
      page.$eval(`#list li[data-seq="${seq}"] .text`, (text) => getComputedStyle(text).fontWeight);
    for (const text of ['one', 'two', 'three']) await publishFrom(page, text);
    // The bell counts what was never seen; the inbox stays closed until it is clicked.
    await until(() => badge(page), '3');
    expect(await page.isVisible('#panel')).toBe(false);
    expect(await page.title()).toBe('(3) MiniPush demo inbox');

    await page.click('#bell');
    expect(await page.isVisible('#panel')).toBe(true);
    await until(() => badge(page), '0');
    expect(await page.getAttribute('#badge', 'data-count')).toBe('0');
    expect(await items(page)).toEqual(['3:unread:three', '2:unread:two', '1:unread:one']);
    // Seen is not read: the items stay bold until clicked.
    expect(await weight(2)).toBe('600');
    await page.click('#list li[data-seq="2"] .text');
    await until(() => items(page), ['3:unread:three', '2:read:two', '1:unread:one']);
    expect(await weight(2)).toBe('400');
    expect(await weight(3)).toBe('600');
    expect(await page.textContent('#unread-count')).toBe('2');

    // Archive the first: it leaves the inbox (and the unread count) for the Archived tab.
    await page.click('#list li[data-seq="1"] button.archive');
    await until(() => items(page), ['3:unread:three', '2:read:two']);
    await until(() => page.textContent('#archived-count'), '1');
    expect(await page.textContent('#unread-count')).toBe('1');
    await page.click('#tab-archived');
    expect(await page.getAttribute('#tab-archived', 'aria-selected')).toBe('true');
    await until(() => items(page), ['1:unread:one']);
    expect(await page.textContent('#list li[data-seq="1"] button')).toBe('Unarchive');

    // Unarchive brings it back to the inbox, still unread.
    await page.click('#list li[data-seq="1"] button.unarchive');
    await until(() => items(page), []);
    expect(await page.isVisible('#empty')).toBe(true);
    expect(await page.textContent('#empty')).toBe('Nothing archived.');
    await until(() => page.textContent('#archived-count'), '0');
    await page.click('#tab-inbox');
    await until(() => items(page), ['3:unread:three', '2:read:two', '1:unread:one']);
    expect(await page.textContent('#unread-count')).toBe('2');

    // A new event while the inbox is open counts on the bell until it is opened again.
    await publishFrom(page, 'four');
    await until(() => badge(page), '1');
    await page.click('#list li[data-seq="3"] button.archive');
    await until(() => items(page), ['4:unread:four', '2:read:two', '1:unread:one']);
    await page.screenshot({ path: INBOX_SCREENSHOT, fullPage: true });
    expect(fs.statSync(INBOX_SCREENSHOT).size).toBeGreaterThan(10_000);
    await page.click('#bell');
    expect(await page.isVisible('#panel')).toBe(false);
    await page.click('#bell');
    await until(() => badge(page), '0');
    expect(problems).toEqual([]);
  });
});
