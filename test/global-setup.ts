import type { TestProject } from 'vitest/node';
import { bringUpServices } from '../scripts/harness/services.js';

declare module 'vitest' {
  export interface ProvidedContext {
    kafkaBrokers: string;
    mysqlUrl: string;
    grpcurl: string;
    schemathesis: string;
    /** Jaeger's OTLP/HTTP receiver, a base URL for OTEL_EXPORTER_OTLP_ENDPOINT. */
    otlpEndpoint: string;
    /** Jaeger's OTLP/gRPC receiver, for OTEL_EXPORTER_OTLP_PROTOCOL=grpc. */
    otlpGrpcEndpoint: string;
    /** Jaeger's query API (`/api/traces`, `/api/services`), what its UI calls. */
    jaegerQuery: string;
    /** Debian's nginx binary, for the reverse-proxy test. */
    nginx: string;
  }
}

/**
 * Brings up the real Kafka broker, MariaDB and Jaeger with the project's own script (installing
 * them on a fresh machine), hands their addresses to the suites, and stops afterwards those
 * that were not already running before the tests.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const services = await bringUpServices();
  const { env } = services;
  project.provide('kafkaBrokers', env.MINIPUSH_KAFKA_BROKERS ?? '');
  project.provide('mysqlUrl', env.MINIPUSH_MYSQL_URL ?? '');
  project.provide('grpcurl', env.MINIPUSH_TEST_GRPCURL ?? '');
  project.provide('schemathesis', env.MINIPUSH_TEST_SCHEMATHESIS ?? '');
  project.provide('otlpEndpoint', env.MINIPUSH_TEST_OTLP_ENDPOINT ?? '');
  project.provide('otlpGrpcEndpoint', env.MINIPUSH_TEST_OTLP_GRPC_ENDPOINT ?? '');
  project.provide('jaegerQuery', env.MINIPUSH_TEST_JAEGER_QUERY ?? '');
  project.provide('nginx', env.MINIPUSH_TEST_NGINX ?? '');
  return () => services.release();
}
