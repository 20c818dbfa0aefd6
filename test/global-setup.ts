import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);
const root = path.resolve(import.meta.dirname, '..');
const script = path.join(root, 'scripts', 'services.sh');

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    mysqlUrl: string;
    grpcurl: string;
    schemathesis: string;
  }
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
 * Brings up the real Kafka broker and MariaDB with the project's own script (installing them
 * on a fresh machine), hands their addresses to the suites, and stops them afterwards unless
 * they were already running before the tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
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
  project.provide('kafkaBrokers', env.MINIPUSH_KAFKA_BROKERS ?? '');
  project.provide('mysqlUrl', env.MINIPUSH_MYSQL_URL ?? '');
  project.provide('grpcurl', env.MINIPUSH_TEST_GRPCURL ?? '');
  project.provide('schemathesis', env.MINIPUSH_TEST_SCHEMATHESIS ?? '');
  return async () => {
    if (!wasUp) {
      await run(script, ['down']);
    }
  };
}
