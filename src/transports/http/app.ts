import { Ajv } from 'ajv';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type RawServerDefault,
} from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import swagger from '@fastify/swagger';
import { trace } from '@opentelemetry/api';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Authenticator, Principal } from '../../auth/authenticator.js';
import { MiniPushError, type ErrorCode } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { MiniPushService } from '../../service.js';
import { devRoutes } from './routes/dev.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes, type Readiness } from './routes/health.js';
import { usersRoutes } from './routes/users.js';
import { SHARED_SCHEMAS } from './schemas.js';

/** The REST app as MiniPush builds it: TypeBox schemas type the handlers. */
export type HttpApp = FastifyInstance<
  RawServerDefault,
  IncomingMessage,
  ServerResponse,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the auth hook on every authenticated route. */
    principal: Principal;
  }
}

export interface HttpAppOptions {
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  readonly readiness: () => Promise<Readiness>;
  readonly version: string;
  /** Largest HTTP request body in bytes. */
  readonly bodyLimit: number;
  /** Secret for `/v1/dev/token`, or null to leave the route out. */
  readonly devTokenSecret: string | null;
  /** Extra plugins registered last (WebSocket hub, metrics, demo page). */
  readonly plugins?: ReadonlyArray<(app: HttpApp) => Promise<void>>;
}

/** Which error code a schema violation maps to, by the field at fault. */
function codeForField(part: string | undefined, field: string): ErrorCode {
  if (field === 'uid' || (part === 'body' && field === 'to')) return 'MINIPUSH_INVALID_UID';
  if (['after', 'from', 'to', 'upTo', 'seqs'].includes(field)) return 'MINIPUSH_INVALID_SEQ';
  if (field === 'limit') return 'MINIPUSH_LIMIT_TOO_LARGE';
  if (part === 'body' && ['id', 'body', 'createTime'].includes(field))
    return 'MINIPUSH_INVALID_EVENT';
  return 'MINIPUSH_BAD_REQUEST';
}

/** Patterns in route schemas, said in words. */
const PATTERN_MEANINGS: Record<string, string> = {
  '^[\\x21-\\x7e]+$': 'may hold only printable ASCII characters without spaces',
};

function fromValidation(error: FastifyError): MiniPushError {
  const first = error.validation?.[0];
  const part = error.validationContext;
  const missing =
    first?.keyword === 'required'
      ? String((first.params as { missingProperty?: string }).missingProperty)
      : '';
  const extra =
    first?.keyword === 'additionalProperties'
      ? String((first.params as { additionalProperty?: string }).additionalProperty)
      : '';
  const path = (first?.instancePath ?? '').split('/').filter(Boolean);
  const field = missing || extra || path[0] || '';
  const where = [part, ...path, missing].filter(Boolean).join('.');
  let message: string;
  if (missing) message = `${where} is required`;
  else if (extra) message = `${part ?? 'request'} has an unknown field "${extra}"`;
  else if (first?.keyword === 'pattern') {
    const pattern = String((first.params as { pattern?: string }).pattern);
    message = `${where} ${PATTERN_MEANINGS[pattern] ?? `must match ${pattern}`}`;
  } else message = `${where} ${first?.message ?? 'is invalid'}`;
  let code = extra ? 'MINIPUSH_BAD_REQUEST' : codeForField(part, field);
  if (code === 'MINIPUSH_LIMIT_TOO_LARGE' && first?.keyword !== 'maximum')
    code = 'MINIPUSH_BAD_REQUEST';
  return new MiniPushError(code, message);
}

/** Maps any error to `{ error: { code, message } }` with the right status. */
function toClientError(error: FastifyError | MiniPushError | Error): MiniPushError {
  if (error instanceof MiniPushError) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return fromValidation(fastifyError);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new MiniPushError(
        'MINIPUSH_BODY_TOO_LARGE',
        'request body is larger than the server accepts',
      );
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new MiniPushError('MINIPUSH_BAD_REQUEST', 'send the body as application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new MiniPushError('MINIPUSH_BAD_REQUEST', 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new MiniPushError('MINIPUSH_BAD_REQUEST', 'content-length does not match the body');
    default:
      break;
  }
  if (fastifyError.statusCode === 400 && error instanceof SyntaxError) {
    return new MiniPushError(
      'MINIPUSH_BAD_REQUEST',
      `the body is not valid JSON: ${error.message}`,
    );
  }
  if (
    fastifyError.statusCode !== undefined &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return new MiniPushError('MINIPUSH_BAD_REQUEST', error.message);
  }
  return new MiniPushError('MINIPUSH_INTERNAL', 'internal error', { cause: error });
}

/** Builds the REST app (not listening); the CLI or a test decides where it listens. */
export async function buildHttpApp(options: HttpAppOptions): Promise<HttpApp> {
  // Typed as Fastify's logger so the app's type does not carry pino's generics around.
  const httpLogger: FastifyBaseLogger = options.logger.child({ component: 'http' });
  const app = Fastify({
    loggerInstance: httpLogger,
    // Per-request lines cost more than they tell at this rate; errors are logged by our handler.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Query strings arrive as text and need coercion; JSON bodies must already have the right types.
  const queryAjv = new Ajv({
    coerceTypes: 'array',
    useDefaults: true,
    removeAdditional: false,
    strict: false,
  });
  const bodyAjv = new Ajv({
    coerceTypes: false,
    useDefaults: true,
    removeAdditional: false,
    strict: false,
  });
  app.setValidatorCompiler(({ schema, httpPart }) =>
    (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema),
  );

  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);

  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    const clientError = toClientError(error);
    // The code the client gets, on the traced request: a schema error is recorded as Fastify's.
    trace.getActiveSpan()?.setAttribute('error.type', clientError.code);
    if (clientError.code === 'MINIPUSH_INTERNAL') {
      request.log.error({ err: error, url: request.url, method: request.method }, 'request failed');
    } else if (
      clientError.code === 'MINIPUSH_UNAVAILABLE' ||
      clientError.code === 'MINIPUSH_WAIT_TIMEOUT'
    ) {
      request.log.warn({ err: error, url: request.url }, clientError.message);
    }
    void reply.code(clientError.httpStatus).send(clientError.toJSON());
  });
  app.setNotFoundHandler((request, reply) => {
    void reply
      .code(404)
      .send(
        new MiniPushError(
          'MINIPUSH_NOT_FOUND',
          `no route ${request.method} ${request.url.split('?')[0]}`,
        ).toJSON(),
      );
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'MiniPush',
        version: options.version,
        description:
          'Per-user event feeds with read state and head-seq nudges. Errors are { error: { code, message } }.',
      },
      components: {
        securitySchemes: {
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'An API key (business servers) or a user JWT (sub = uid)',
          },
        },
      },
      security: [{ bearer: [] }],
      tags: [
        { name: 'commands', description: 'Append to the write log' },
        { name: 'queries', description: 'Read the projected feed' },
        { name: 'operations', description: 'Health' },
      ],
    },
    refResolver: {
      buildLocalReference: (json, _base, _fragment, i) =>
        typeof json.$id === 'string' ? json.$id : `def-${i}`,
    },
  });

  app.get('/v1/openapi.json', { schema: { hide: true } }, () => app.swagger());

  await app.register(healthRoutes, { readiness: options.readiness });
  if (options.devTokenSecret !== null) {
    await app.register(devRoutes, { jwtSecret: options.devTokenSecret });
  }

  // Everything in here needs credentials.
  await app.register(async (authenticated) => {
    authenticated.decorateRequest('principal', null as never);
    authenticated.addHook('onRequest', async (request) => {
      request.principal = await options.authenticator.authenticate(request.headers.authorization);
    });
    await authenticated.register(eventsRoutes, { service: options.service });
    await authenticated.register(usersRoutes, {
      service: options.service,
      maxLimit: options.service.settings.maxLimit,
    });
  });

  for (const plugin of options.plugins ?? []) await plugin(app);
  return app;
}
