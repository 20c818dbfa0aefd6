import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { killAll, spawnMiniPush } from './helpers/processes.js';
import { tempDir } from './helpers/services.js';

const run = promisify(execFile);
const cli = path.resolve(import.meta.dirname, '../dist/src/cli.js');

async function minipush(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], {
      env: { PATH: process.env.PATH, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('minipush CLI (built)', () => {
  afterAll(() => killAll());

  it('should list every command and setting with --help', async () => {
    const { code, stdout } = await minipush(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('serve');
    expect(stdout).toContain('--session-quota');
    expect(stdout).toContain('MINIPUSH_EVENT_TTL');
  });

  it('should refuse a bad setting with a clear message and a non-zero exit', async () => {
    const { code, stderr } = await minipush(['serve'], { MINIPUSH_SESSION_QUOTA: 'lots' });
    expect(code).toBe(2);
    expect(stderr).toContain(
      'invalid configuration: MINIPUSH_SESSION_QUOTA / --session-quota: "lots" is not an integer',
    );
  });

  it('should refuse an unknown command', async () => {
    const { code, stderr } = await minipush(['fly']);
    expect(code).toBe(2);
    expect(stderr).toContain('unknown command "fly"');
  });

  it('should refuse a second server on the same data folder, naming the folder and the first', async () => {
    const dataDir = tempDir();
    const env = { MINIPUSH_DATA_DIR: dataDir, MINIPUSH_HTTP_PORT: '0', MINIPUSH_GRPC_PORT: '-1' };
    const first = await spawnMiniPush(env);
    try {
      const second = await minipush(['serve'], env);
      expect(second.code).toBe(1);
      expect(second.stderr.trim().split('\n')).toHaveLength(1);
      expect(second.stderr).toContain(`the data folder ${dataDir} is in use`);
      expect(second.stderr).toContain(`pid ${first.child.pid}`);
      // The first one goes on serving.
      expect((await fetch(`${first.url}/readyz`)).status).toBe(200);
    } finally {
      await first.kill('SIGTERM');
    }
    // Once it is gone, the folder can be taken again, even after a SIGKILL.
    const again = await spawnMiniPush(env);
    await again.kill('SIGKILL');
    const after = await spawnMiniPush(env);
    await after.kill('SIGTERM');
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('should refuse a taken port in one line naming its setting, before touching the data', async () => {
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as net.AddressInfo).port;
    const dataDir = tempDir();
    try {
      const { code, stderr } = await minipush(['serve'], {
        MINIPUSH_DATA_DIR: dataDir,
        MINIPUSH_HTTP_PORT: String(port),
      });
      expect(code).toBe(1);
      expect(stderr.trim()).toBe(
        `minipush: port ${port} on 127.0.0.1 is in use by another process; stop it or choose another port with --http-port / MINIPUSH_HTTP_PORT`,
      );
      expect(fs.readdirSync(dataDir)).toEqual([]);
    } finally {
      holder.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
