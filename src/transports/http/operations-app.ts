import Fastify, { LogController, type FastifyBaseLogger } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { asClientError } from '../../errors.js';
import { clientErrorHandler, frameworkErrors, methodAwareNotFound } from './error-replies.js';
import type { Logger } from '../../logger.js';
import type { HttpApp } from './app.js';
import { healthRoutes, type Readiness } from './routes/health.js';

export interface OperationsAppOptions {
  readonly logger: Logger;
  readonly readiness: () => Promise<Readiness>;
  /** Registered last, like the full app's (metrics). */
  readonly plugins?: ReadonlyArray<(app: HttpApp) => Promise<void>>;
}

/**
 * What a process without the api and hub roles (a projector or cleaner) serves on its HTTP
 * port: `/healthz`, `/readyz` and `/metrics`, so orchestrators and Prometheus reach it too.
 */
export async function buildOperationsApp(options: OperationsAppOptions): Promise<HttpApp> {
  const httpLogger: FastifyBaseLogger = options.logger.child({ component: 'http' });
  const app = Fastify({
    loggerInstance: httpLogger,
    logController: new LogController({ disableRequestLogging: true }),
    clientErrorHandler,
    frameworkErrors,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>();
  const notFound = methodAwareNotFound(app, ': this process has neither the api nor the hub role');
  app.setErrorHandler((error, request, reply) => {
    if (request.is404) {
      notFound(request, reply);
      return;
    }
    const clientError = asClientError(error);
    void reply.code(clientError.httpStatus).send(clientError.toJSON());
  });
  await app.register(healthRoutes, { readiness: options.readiness });
  for (const plugin of options.plugins ?? []) await plugin(app);
  return app;
}
