import type { TestProject } from 'vitest/node';
import { bringUpServices } from '../scripts/harness/services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    mysqlUrl: string;
    grpcurl: string;
    schemathesis: string;
  }
}

/**
 * Brings up the real Kafka broker and MariaDB with the project's own script (installing them
 * on a fresh machine), hands their addresses to the suites, and stops them afterwards unless
 * they were already running before the tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await bringUpServices();
  const { env } = services;
  project.provide('kafkaBrokers', env.MINIPUSH_KAFKA_BROKERS ?? '');
  project.provide('mysqlUrl', env.MINIPUSH_MYSQL_URL ?? '');
  project.provide('grpcurl', env.MINIPUSH_TEST_GRPCURL ?? '');
  project.provide('schemathesis', env.MINIPUSH_TEST_SCHEMATHESIS ?? '');
  return () => services.release();
}
