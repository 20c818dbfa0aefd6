import { bringUpServices } from '../../scripts/harness/services.js';

export { freePort, ROOT } from '../../scripts/harness/services.js';

/** Where the real Kafka and MariaDB are, and how to let go of them afterwards. */
export interface Services {
  readonly kafkaBrokers: string;
  readonly mysqlUrl: string;
  /** Stops what this run started (nothing when the services were already there). */
  release(): Promise<void>;
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
  const { env, release } = await bringUpServices();
  return {
    kafkaBrokers: env.MINIPUSH_KAFKA_BROKERS ?? '',
    mysqlUrl: env.MINIPUSH_MYSQL_URL ?? '',
    release,
  };
}
