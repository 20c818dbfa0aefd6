import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';

/**
 * The real-services harness as the test suite and the benchmarks both use it: plain Node, no
 * vitest, so `npm run bench` can import it too.
 */
const run = promisify(execFile);

/** The checkout's root, from the sources (vitest) or from their build under dist/ (benchmarks). */
function projectRoot(): string {
  for (let dir = import.meta.dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'scripts', 'services.sh'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('scripts/services.sh not found above ' + dir);
  }
}

export const ROOT = projectRoot();
const script = path.join(ROOT, 'scripts', 'services.sh');

/** The services that `scripts/services.sh up` brought up, by their MINIPUSH_* variables. */
export interface RunningServices {
  readonly env: Readonly<Record<string, string>>;
  /** Stops the services that this call started, and only those. */
  readonly release: () => Promise<void>;
}

/** The services `services.sh` manages, each stopped by its own `<name>-down`. */
const MANAGED = ['kafka', 'mariadb', 'jaeger'] as const;

/**
 * The managed services that do not run yet, from the lines of `services.sh status`
 * (`kafka: running …`, `jaeger: stopped`, …), which exits non-zero when any is stopped.
 */
async function stoppedServices(): Promise<string[]> {
  const stdout = await run(script, ['status']).then(
    (done) => done.stdout,
    (err: { stdout?: string }) => err.stdout ?? '',
  );
  const stopped = new Set([...stdout.matchAll(/^(\w+): stopped$/gm)].map((match) => match[1]!));
  return MANAGED.filter((name) => stopped.has(name));
}

/**
 * Brings up the real Kafka broker, MariaDB and Jaeger with the project's own script (installing
 * or building them on a fresh machine) and reads their addresses from `services.sh env`.
 */
export async function bringUpServices(): Promise<RunningServices> {
  const startedHere = await stoppedServices();
  const child = execFile(script, ['up'], { maxBuffer: 64 * 1024 * 1024 });
  child.stderr?.pipe(process.stderr);
  await new Promise<void>((resolve, reject) => {
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`services.sh up exited with ${code}`)),
    );
    child.on('error', reject);
  });
  const { stdout } = await run(script, ['env']);
  const env = Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => {
        const at = line.indexOf('=');
        return [line.slice(0, at), line.slice(at + 1)];
      }),
  );
  return {
    env,
    release: async () => {
      // Each `<name>-down` stops only a service this script started (it keeps the pid).
      for (const name of startedHere) await run(script, [`${name}-down`]);
    },
  };
}

/** Deletes the topics and consumer groups named `<prefix>.…`. */
export async function dropKafkaPrefix(brokers: readonly string[], prefix: string): Promise<void> {
  const kafka = new Kafka({
    clientId: 'minipush-cleanup',
    brokers: [...brokers],
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  try {
    const mine = (name: string) => name.startsWith(`${prefix}.`);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter(mine);
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    const topics = (await admin.listTopics()).filter(mine);
    if (topics.length > 0) await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}

/** A loopback port nothing listens on now (the OS's pick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
