import type { IncomingMessage } from 'node:http';
import { FastifyOtelInstrumentation } from '@fastify/otel';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { KafkaJsInstrumentation } from '@opentelemetry/instrumentation-kafkajs';
import { MySQL2Instrumentation } from '@opentelemetry/instrumentation-mysql2';
import { NodeSDK } from '@opentelemetry/sdk-node';

/**
 * Not traced: paths polled by load balancers and Prometheus (noise), and the WebSocket upgrade,
 * whose request never completes as HTTP; nudges are traced on their own.
 */
const UNTRACED_PATH = /^\/(healthz|readyz|metrics|v1\/ws)(\?|$)/;

/** Query parameters never recorded on spans (`?token=` carries user JWTs on /v1/ws). */
const REDACTED_QUERY_PARAMS = ['token', 'access_token', 'sig', 'Signature', 'X-Goog-Signature'];

/**
 * The SDK, configured by the standard OTEL_* variables (service name, exporter, protocol,
 * endpoint, sampler, batch delays, resource attributes), with the instrumentations MiniPush's
 * libraries need, chosen one by one rather than through the auto-instrumentations bundle.
 * Metrics are Prometheus' job (`/metrics`) and logs go to stdout, so the SDK exports neither
 * unless OTEL_METRICS_EXPORTER or OTEL_LOGS_EXPORTER ask for it.
 */
export function createSdk(env: NodeJS.ProcessEnv): NodeSDK {
  const named =
    (env.OTEL_SERVICE_NAME ?? '') !== '' ||
    /(^|,)\s*service\.name\s*=/.test(env.OTEL_RESOURCE_ATTRIBUTES ?? '');
  return new NodeSDK({
    ...(named ? {} : { serviceName: 'minipush' }),
    ...((env.OTEL_METRICS_EXPORTER ?? '') === '' ? { metricReaders: [] } : {}),
    ...((env.OTEL_LOGS_EXPORTER ?? '') === '' ? { logRecordProcessors: [] } : {}),
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (request: IncomingMessage) =>
          UNTRACED_PATH.test(request.url ?? ''),
        redactedQueryParamsServer: REDACTED_QUERY_PARAMS,
        redactedQueryParams: REDACTED_QUERY_PARAMS,
      }),
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        ignorePaths: (route) => UNTRACED_PATH.test(route.url),
        // Fastify's request.url keeps the query string, which may hold a token.
        requestHook: (span, request) => span.setAttribute('url.path', request.url.split('?')[0]!),
      }),
      new GrpcInstrumentation(),
      // Statements as written (with `?` placeholders): bound values would put event bodies
      // into spans.
      new MySQL2Instrumentation({ maskStatement: true }),
      new KafkaJsInstrumentation(),
    ],
  });
}
