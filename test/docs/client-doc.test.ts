import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killAll, spawnMiniPush, type MiniPushProcess } from '../helpers/processes.js';
import { tempDir } from '../helpers/services.js';

const root = path.resolve(import.meta.dirname, '../..');

/** The first fenced JavaScript block of a docs page. */
function firstSnippet(file: string): string {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  const match = /```js\n([\s\S]*?)```/.exec(text);
  if (!match) throw new Error(`${file} has no js block`);
  return match[1]!;
}

describe('docs/client.md', () => {
  const dataDir = tempDir('minipush-doc-');
  // Inside the package, so `import 'minipush/client'` resolves to the built SDK by self-reference.
  fs.mkdirSync(path.join(root, 'test-results'), { recursive: true });
  const scriptDir = fs.mkdtempSync(path.join(root, 'test-results', 'doc-'));
  let server: MiniPushProcess;

  beforeAll(async () => {
    server = await spawnMiniPush({
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '-1',
    });
  });

  afterAll(async () => {
    await server?.kill();
    await killAll();
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(scriptDir, { recursive: true, force: true });
  });

  it('should run the dozen-line example: print new events and mark them read', async () => {
    const snippet = firstSnippet('docs/client.md');
    expect(snippet).toContain("const base = 'http://127.0.0.1:8080';");
    const script = path.join(scriptDir, 'snippet.mjs');
    fs.writeFileSync(script, snippet.replace('http://127.0.0.1:8080', server.url!));
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    try {
      const { apiKey } = JSON.parse(
        fs.readFileSync(path.join(dataDir, 'dev-credentials.json'), 'utf8'),
      ) as { apiKey: string };
      for (const text of ['hello', 'again']) {
        const res = await fetch(`${server.url}/v1/events?wait=true`, {
          method: 'POST',
          headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to: [1], body: { text } }),
        });
        expect(res.status).toBe(200);
      }
      await expect
        .poll(() => stdout, { timeout: 20_000 })
        .toMatch(/#1 \{"text":"hello"\}\n[\s\S]*#2 \{"text":"again"\}\n[\s\S]*unread: 0\n$/);
      expect(stderr).toBe('');
      const token = (await (
        await fetch(`${server.url}/v1/dev/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ uid: 1 }),
        })
      ).json()) as { token: string };
      const stats = await fetch(`${server.url}/v1/users/1/stats`, {
        headers: { authorization: `Bearer ${token.token}` },
      });
      expect(await stats.json()).toMatchObject({ headSeq: 2, unreadCount: 0 });
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });
});
