import { Type } from '@sinclair/typebox';
import type { HttpApp } from '../app.js';

/** The process's metrics as this route reads and feeds them (telemetry's Metrics fits). */
export interface PrometheusMetrics {
  readonly registry: { readonly contentType: string; metrics(): Promise<string> };
  observeRequest(transport: 'http', route: string, outcome: string, seconds: number): void;
}

/**
 * `GET /metrics` in Prometheus' text format, without credentials (keep it on a network only
 * Prometheus reaches, see docs/observability.md), and the time of every HTTP request by route.
 * Added to the root app so its hook sees every route.
 */
export function metricsRoutes(metrics: PrometheusMetrics): (app: HttpApp) => Promise<void> {
  return async (app) => {
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? '(unmatched)';
      metrics.observeRequest(
        'http',
        `${request.method} ${route}`,
        String(reply.statusCode),
        reply.elapsedTime / 1000,
      );
    });
    app.get(
      '/metrics',
      {
        schema: {
          summary: 'Prometheus metrics of this process (text exposition format)',
          tags: ['operations'],
          security: [],
          produces: ['text/plain'],
          response: { 200: Type.String() },
        },
      },
      async (_request, reply) =>
        reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()),
    );
  };
}
