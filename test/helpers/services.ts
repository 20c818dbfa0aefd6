import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knexFactory from 'knex';
import { inject } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/store/database.js';
import { dropKafkaPrefix } from '../../scripts/harness/services.js';

export { freePort } from '../../scripts/harness/services.js';

export function kafkaBrokers(): string[] {
  return inject('kafkaBrokers').split(',');
}

export function mysqlUrl(): string {
  return inject('mysqlUrl');
}

export function randomName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** A fresh MariaDB database, dropped when `cleanup` runs; returns its URL. */
export async function createTestDatabase(): Promise<{
  url: string;
  name: string;
  drop: () => Promise<void>;
}> {
  const name = randomName('minipush_t');
  const admin = knexFactory({ client: 'mysql2', connection: mysqlUrl() });
  try {
    await admin.raw(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
  } finally {
    await admin.destroy();
  }
  const url = new URL(mysqlUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: async () => {
      const again = knexFactory({ client: 'mysql2', connection: mysqlUrl() });
      try {
        await again.raw(`DROP DATABASE IF EXISTS \`${name}\``);
      } finally {
        await again.destroy();
      }
    },
  };
}

/** An empty store of its own: a fresh MariaDB database or a SQLite file in a temp folder. */
export async function openTestStore(
  kind: 'mariadb' | 'sqlite',
  options: { poolSize?: number } = {},
): Promise<{ db: Database; cleanup: () => Promise<void> }> {
  if (kind === 'mariadb') {
    const created = await createTestDatabase();
    return {
      db: openDatabase({ mysqlUrl: created.url, dataDir: '', ...options }),
      cleanup: created.drop,
    };
  }
  const dir = tempDir();
  return {
    db: openDatabase({ mysqlUrl: '', dataDir: dir }),
    cleanup: () => Promise.resolve(fs.rmSync(dir, { recursive: true, force: true })),
  };
}

export function tempDir(prefix = 'minipush-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export type Backend = 'kafka+mysql' | 'embedded';

/** A config for one test: random topic prefix, free ports, quiet logs, and the given backend. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return loadConfig({
    env: {},
    overrides: {
      topicPrefix: randomName('mp'),
      httpPort: 0,
      grpcPort: 0,
      logLevel: 'warn',
      partitions: 4,
      cleanerIntervalMs: 3_600_000,
      ...overrides,
    },
  });
}

export interface TestBackend {
  readonly config: Config;
  /** Drops the database and the Kafka topics and groups, or removes the data folder. */
  cleanup(): Promise<void>;
}

/** Config pointing at a fresh database and topics on the real broker, or at a fresh data folder. */
export async function backendConfig(
  backend: Backend,
  overrides: Partial<Config> = {},
): Promise<TestBackend> {
  if (backend === 'embedded') {
    const dataDir = tempDir();
    return {
      config: testConfig({ dataDir, ...overrides }),
      cleanup: () => Promise.resolve(fs.rmSync(dataDir, { recursive: true, force: true })),
    };
  }
  const db = await createTestDatabase();
  const config = testConfig({ kafkaBrokers: kafkaBrokers(), mysqlUrl: db.url, ...overrides });
  return {
    config,
    cleanup: async () => {
      await dropKafkaPrefix(kafkaBrokers(), config.topicPrefix);
      await db.drop();
    },
  };
}
