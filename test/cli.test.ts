import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

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
});
