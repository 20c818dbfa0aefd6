import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

export interface Readiness {
  readonly ready: boolean;
  /** Each dependency: "ok" or why it is not. */
  readonly checks: Record<string, string>;
}

export interface HealthRoutesOptions {
  readonly readiness: () => Promise<Readiness>;
}

const ReadinessBody = Type.Object({
  status: Type.Union([Type.Literal('ready'), Type.Literal('not ready')]),
  checks: Type.Record(Type.String(), Type.String()),
});

/** Liveness and readiness for load balancers and the test harness. */
export const healthRoutes: FastifyPluginAsyncTypebox<HealthRoutesOptions> = async (
  app,
  { readiness },
) => {
  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness: the process answers',
        tags: ['operations'],
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        summary: "Readiness: the store, the log and this process's consumers work",
        tags: ['operations'],
        security: [],
        response: { 200: ReadinessBody, 503: ReadinessBody },
      },
    },
    async (_request, reply) => {
      const result = await readiness();
      return reply.code(result.ready ? 200 : 503).send({
        status: result.ready ? ('ready' as const) : ('not ready' as const),
        checks: result.checks,
      });
    },
  );
};
