import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = path.resolve(import.meta.dirname, '../../..');
const script = path.join(ROOT, 'scripts', 'services.sh');

/** Where the real Kafka and MariaDB are, and how to let go of them afterwards. */
export interface Services {
  readonly kafkaBrokers: string;
  readonly mysqlUrl: string;
  /** Stops what this run started (nothing when the services were already there). */
  release(): Promise<void>;
}

async function servicesUp(): Promise<boolean> {
  try {
    await run(script, ['status']);
    return true;
  } catch {
    return false;
  }
}

/**
 * The services the benchmarks run against, found like the test suite finds them: the
 * MINIPUSH_TEST_KAFKA_BROKERS / MINIPUSH_TEST_MYSQL_URL variables when set, otherwise the
 * project's own `scripts/services.sh up` (installing them on a fresh machine), stopped again
 * afterwards only if this run started them.
 */
export async function acquireServices(): Promise<Services> {
  const kafka = process.env.MINIPUSH_TEST_KAFKA_BROKERS ?? '';
  const mysql = process.env.MINIPUSH_TEST_MYSQL_URL ?? '';
  if (kafka !== '' && mysql !== '') {
    return { kafkaBrokers: kafka, mysqlUrl: mysql, release: () => Promise.resolve() };
  }
  const wasUp = await servicesUp();
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
    kafkaBrokers: env.MINIPUSH_KAFKA_BROKERS ?? '',
    mysqlUrl: env.MINIPUSH_MYSQL_URL ?? '',
    release: async () => {
      if (!wasUp) await run(script, ['down']);
    },
  };
}
