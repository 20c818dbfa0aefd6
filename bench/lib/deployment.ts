import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import knexFactory, { type Knex } from 'knex';
import { openBackend, prepareBackend } from '../../src/backend.js';
import { configEnv, loadConfig, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { dropKafkaPrefix } from '../../scripts/harness/services.js';
import { ROOT, type Services } from './services.js';

export const BIN = path.join(ROOT, 'dist/src/bin.js');
export const API_KEY = 'bench-api-key-0123456789';
export const JWT_SECRET = 'bench-jwt-secret-0123456789-0123456789';

export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/**
 * `--cpu-prof` into bench-results/profiles/ when `MINIPUSH_BENCH_PROFILE` names one of `roles`
 * (comma-separated, e.g. `projector,hub`, `rebuild`) or is `all`.
 */
export function profilingArgs(roles: string): string[] {
  const profile = process.env.MINIPUSH_BENCH_PROFILE;
  if (!profile || (profile !== 'all' && !profile.split(',').some((r) => roles.includes(r))))
    return [];
  const dir = path.join(ROOT, 'bench-results', 'profiles');
  fs.mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** `MINIPUSH_BENCH_NODE_OPTIONS` as the servers' NODE_OPTIONS (e.g. --perf-basic-prof). */
export function benchNodeOptions(): { NODE_OPTIONS?: string } {
  const options = process.env.MINIPUSH_BENCH_NODE_OPTIONS;
  return options ? { NODE_OPTIONS: options } : {};
}

/** One `minipush serve` process of a benchmark. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly url: string | null;
  readonly grpcPort: number | null;
  readonly exited: Promise<void>;
  /** Lines at warn and above, for failure messages. */
  problems(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

const alive = new Set<ChildProcess>();

/** SIGKILLs every process the benchmarks started that still runs (for a failed run). */
export function killAllServers(): void {
  for (const child of alive) if (child.exitCode === null) child.kill('SIGKILL');
}

/**
 * Starts the built `minipush` command with the given environment and resolves once it says it
 * is running. `MINIPUSH_BENCH_PROFILE=<roles>` adds `--cpu-prof` to processes with those roles
 * (profiles land in bench-results/profiles/); `MINIPUSH_BENCH_NODE_OPTIONS` is their NODE_OPTIONS.
 */
export function spawnServer(
  env: Record<string, string>,
  options: {
    args?: string[];
    label?: string;
    timeoutMs?: number;
    /** Another build's `dist/src/bin.js` (a baseline checkout), instead of this one's. */
    bin?: string;
  } = {},
): Promise<ServerProcess> {
  const nodeArgs = profilingArgs(env.MINIPUSH_ROLES ?? 'all');
  const child = spawn(
    process.execPath,
    [...nodeArgs, options.bin ?? BIN, ...(options.args ?? ['serve'])],
    {
      env: {
        PATH: process.env.PATH ?? '',
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        MINIPUSH_LOG_LEVEL: 'info',
        ...benchNodeOptions(),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  alive.add(child);
  const lines: string[] = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      alive.delete(child);
      resolve();
    });
  });
  const timeoutMs = options.timeoutMs ?? 90_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`${options.label ?? 'minipush'} did not start in ${timeoutMs} ms\n${stderr}`),
      );
    }, timeoutMs);
    void exited.then(() => {
      clearTimeout(timer);
      reject(
        new Error(`${options.label ?? 'minipush'} exited early\n${lines.join('\n')}\n${stderr}`),
      );
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (['warn', 'error', 'fatal'].includes(String(entry.level))) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
      }
      if (entry.msg === 'minipush is running') {
        clearTimeout(timer);
        resolve({
          child,
          pid: child.pid!,
          url: typeof entry.http === 'string' ? entry.http : null,
          grpcPort: typeof entry.grpcPort === 'number' ? entry.grpcPort : null,
          exited,
          problems: () => [...lines, stderr].join('\n'),
          async stop(signal: NodeJS.Signals = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            const force = setTimeout(() => child.kill('SIGKILL'), 20_000);
            await exited;
            clearTimeout(force);
          },
        });
      }
    });
  });
}

/** A fresh deployment: its own database and topic prefix on the real services, or a data folder. */
export interface Deployment {
  readonly backend: 'kafka+mariadb' | 'embedded';
  readonly config: Config;
  /** Environment for `minipush` processes of this deployment, with these roles. */
  env(roles: Config['roles'], extra?: Partial<Config>): Record<string, string>;
  /** A knex handle on the deployment's store (MariaDB only). */
  db(): Knex;
  destroy(): Promise<void>;
}

const COMMON: Partial<Config> = {
  apiKeys: [API_KEY],
  jwtSecret: JWT_SECRET,
  httpPort: 0,
  grpcPort: 0,
  // Info is the default, and where "minipush is running" is said; nothing logs per request.
  logLevel: 'info',
  maxConnectionsPerIp: 0,
  cleanerIntervalMs: 3_600_000,
  demoEnabled: false,
};

function deploymentEnv(config: Config): Record<string, string> {
  return configEnv({
    kafkaBrokers: config.kafkaBrokers,
    mysqlUrl: config.mysqlUrl,
    dataDir: config.dataDir,
    topicPrefix: config.topicPrefix,
    partitions: config.partitions,
    apiKeys: config.apiKeys,
    jwtSecret: config.jwtSecret,
    httpPort: config.httpPort,
    grpcPort: config.grpcPort,
    logLevel: config.logLevel,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    cleanerIntervalMs: config.cleanerIntervalMs,
    demoEnabled: config.demoEnabled,
    maxSessionsPerHub: config.maxSessionsPerHub,
    mysqlPoolSize: config.mysqlPoolSize,
    roles: config.roles,
  });
}

/** A new database and topic prefix on the given services, migrated and with topics created. */
export async function kafkaDeployment(
  services: Services,
  overrides: Partial<Config> = {},
): Promise<Deployment> {
  const database = randomName('minipush_bench');
  const admin = knexFactory({ client: 'mysql2', connection: services.mysqlUrl });
  try {
    await admin.raw(
      `CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await admin.destroy();
  }
  const url = new URL(services.mysqlUrl);
  url.pathname = `/${database}`;
  const config = loadConfig({
    env: {},
    overrides: {
      ...COMMON,
      kafkaBrokers: services.kafkaBrokers.split(','),
      mysqlUrl: url.toString(),
      topicPrefix: randomName('bench'),
      ...overrides,
    },
  });
  const logger = createLogger('warn');
  const backend = openBackend(config, logger);
  try {
    await prepareBackend(config, backend, logger);
  } finally {
    await backend.close();
  }
  let handle: Knex | null = null;
  return {
    backend: 'kafka+mariadb',
    config,
    env: (roles, extra = {}) => deploymentEnv({ ...config, ...extra, roles }),
    db: () => (handle ??= knexFactory({ client: 'mysql2', connection: config.mysqlUrl })),
    async destroy() {
      await handle?.destroy();
      await dropKafkaPrefix(services.kafkaBrokers.split(','), config.topicPrefix).catch(
        () => undefined,
      );
      const again = knexFactory({ client: 'mysql2', connection: services.mysqlUrl });
      try {
        await again.raw(`DROP DATABASE IF EXISTS \`${database}\``);
      } finally {
        await again.destroy();
      }
    },
  };
}

/** The embedded default in a fresh data folder (SQLite store and log, one process). */
export function embeddedDeployment(overrides: Partial<Config> = {}): Deployment {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'minipush-bench-'));
  const config = loadConfig({
    env: {},
    overrides: { ...COMMON, dataDir, topicPrefix: 'minipush', ...overrides },
  });
  return {
    backend: 'embedded',
    config,
    env: (roles, extra = {}) => deploymentEnv({ ...config, ...extra, roles }),
    db: () => {
      throw new Error('the embedded store belongs to its process');
    },
    destroy: () => Promise.resolve(fs.rmSync(dataDir, { recursive: true, force: true })),
  };
}

/** Reads one Prometheus counter or gauge from a process's /metrics, summed over its labels. */
export async function scrapeMetric(url: string, name: string): Promise<number> {
  const response = await fetch(`${url}/metrics`);
  const text = await response.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== ' ' && rest[0] !== '{') continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum += value;
  }
  return sum;
}
