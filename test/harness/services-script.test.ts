import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort, randomName, tempDir } from '../helpers/services.js';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '../..');
const script = path.join(root, 'scripts', 'services.sh');

/** scripts/services.sh for a private instance: its own data, its own ports, nothing shared. */
function servicesEnv(overrides: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...overrides };
  delete env.MINIPUSH_TEST_KAFKA_BROKERS;
  delete env.MINIPUSH_TEST_MYSQL_URL;
  return env;
}

async function services(command: string, env: NodeJS.ProcessEnv) {
  return run(script, [command], { env, maxBuffer: 16 * 1024 * 1024 }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code?: number; stdout?: string; stderr?: string }) => ({
      code: error.code ?? -1,
      stdout: error.stdout ?? '',
      stderr: error.stderr ?? '',
    }),
  );
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

/** A free port whose successor is free too (Kafka's controller listens on port + 1). */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    if (port < 65535 && !(await portOpen(port + 1))) return port;
  }
}

describe('scripts/services.sh', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('should run MariaDB from a cache folder other users cannot enter (mode 0700)', async () => {
    const home = tempDir('minipush-private-home-');
    fs.chmodSync(home, 0o700);
    const env = servicesEnv({
      MINIPUSH_CACHE_DIR: path.join(home, 'cache'),
      MINIPUSH_TEST_MARIADB_PORT: String(await freePort()),
    });
    cleanups.push(async () => {
      await services('mariadb-down', env);
      fs.rmSync(home, { recursive: true, force: true });
    });

    const up = await services('mariadb-up', env);
    expect(up.stderr).not.toMatch(/Permission denied/);
    expect(up.code).toBe(0);
    const status = await services('status', env);
    expect(status.stdout).toMatch(/^mariadb: running pid \d+/m);
  }, 300_000);

  it('should stop the Kafka broker a failed `up` started', async () => {
    const instance = randomName('failed-up');
    const kafkaPort = await freePortPair();
    // Another process holds MariaDB's port, so `up` fails after it has started Kafka.
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const env = servicesEnv({
      MINIPUSH_SERVICES_INSTANCE: instance,
      MINIPUSH_TEST_KAFKA_PORT: String(kafkaPort),
      MINIPUSH_TEST_MARIADB_PORT: String((holder.address() as net.AddressInfo).port),
    });
    const instanceDir = path.join(root, '.cache', 'instances', instance);
    cleanups.push(async () => {
      await services('down', env);
      await new Promise((resolve) => holder.close(resolve));
      fs.rmSync(instanceDir, { recursive: true, force: true });
    });

    const up = await services('up', env);
    expect(up.code).not.toBe(0);
    expect(up.stderr).toMatch(/port \d+ is taken by another process/);
    expect(up.stderr).toMatch(/up failed: stopping kafka, which this run started/);
    expect(await portOpen(kafkaPort)).toBe(false);
    expect(fs.existsSync(path.join(instanceDir, 'kafka', 'run', 'kafka.pid'))).toBe(false);
  }, 300_000);

  it("should leave the default instance's Jaeger running when another instance goes down", async () => {
    const query = new URL(inject('jaegerQuery'));
    const port = Number(query.port);
    expect(await portOpen(port)).toBe(true);
    const env = servicesEnv({ MINIPUSH_SERVICES_INSTANCE: randomName('down') });
    const down = await services('down', env);
    expect(down.code).toBe(0);
    expect(await portOpen(port)).toBe(true);
  }, 120_000);
});
