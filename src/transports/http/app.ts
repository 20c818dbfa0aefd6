import { Ajv } from 'ajv';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyRequest,
  type FastifySchemaValidationError,
  type RawServerDefault,
} from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import swagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Authenticator, Principal } from '../../auth/authenticator.js';
import {
  BadRequestError,
  BodyTooLargeError,
  MiniPushError,
  UnsupportedMediaTypeError,
  asClientError,
  invalidInput,
  type InputErrorCode,
} from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { MiniPushService } from '../../service.js';
import { devRoutes } from './routes/dev.js';
import { eventsRoutes } from './routes/events.js';
import { healthRoutes, type Readiness } from './routes/health.js';
import { usersRoutes } from './routes/users.js';
import { clientErrorHandler, frameworkErrors, methodAwareNotFound } from './error-replies.js';
import { ERROR_CODE_KEYWORD, SHARED_SCHEMAS, type ErrorCodeMark } from './schemas.js';

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
  /**
   * Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client: the address
   * per-IP limits count. Empty: the connection's own address, whatever the headers say.
   */
  readonly trustProxy?: readonly string[];
  /** Origins whose pages may call the API from a browser (`*` for any); empty: CORS off. */
  readonly corsOrigins?: readonly string[];
  /** Hears every error answer, in the request's context (tracing records its code). */
  readonly onClientError?: (error: MiniPushError) => void;
  /** Extra plugins registered last (WebSocket hub, metrics, demo page). */
  readonly plugins?: ReadonlyArray<(app: HttpApp) => Promise<void>>;
}

/** Patterns in route schemas, said in words. */
const PATTERN_MEANINGS: Record<string, string> = {
  '^[\\x21-\\x7e]+$': 'may hold only printable ASCII characters without spaces',
};

type SchemaNode = Readonly<Record<string, unknown>> | undefined;

/** The code a route schema marks for this violation (see ERROR_CODE_KEYWORD). */
function markedCode(schema: SchemaNode, keyword: string): InputErrorCode {
  const mark = schema?.[ERROR_CODE_KEYWORD] as ErrorCodeMark | undefined;
  if (typeof mark === 'string') return mark;
  return mark?.[keyword] ?? mark?.default ?? 'MINIPUSH_BAD_REQUEST';
}

function fromValidation(error: FastifyError): MiniPushError {
  const first = error.validation?.[0];
  const part = error.validationContext;
  const params = (first?.params ?? {}) as { missingProperty?: string; additionalProperty?: string };
  const missing = first?.keyword === 'required' ? String(params.missingProperty) : '';
  const extra = first?.keyword === 'additionalProperties' ? String(params.additionalProperty) : '';
  const path = (first?.instancePath ?? '').split('/').filter(Boolean);
  const field = [...path, missing].filter(Boolean).join('.') || (part ?? 'request');
  const where = [part, ...path, missing].filter(Boolean).join('.');
  let message: string;
  if (missing) message = `${where} is required`;
  else if (extra) message = `${part ?? 'request'} has an unknown field "${extra}"`;
  else if (first?.keyword === 'enum') {
    const allowed = (first.params as { allowedValues?: unknown[] }).allowedValues ?? [];
    message = `${where} must be one of ${allowed.join(', ')}`;
  } else if (first?.keyword === 'pattern') {
    const pattern = String((first.params as { pattern?: string }).pattern);
    message = `${where} ${PATTERN_MEANINGS[pattern] ?? `must match ${pattern}`}`;
  } else message = `${where} ${first?.message ?? 'is invalid'}`;
  // A missing field answers as that field's schema says; an unknown one is always a bad request.
  // Ajv's verbose errors carry the schema holding the failing keyword; Fastify's type omits it.
  const parent = (first as { parentSchema?: SchemaNode } | undefined)?.parentSchema;
  const schema = missing
    ? ((parent?.properties as Record<string, SchemaNode> | undefined)?.[missing] ?? undefined)
    : parent;
  const code = extra ? 'MINIPUSH_BAD_REQUEST' : markedCode(schema, first?.keyword ?? '');
  return invalidInput(code, field, message);
}

/** ` (not …)` naming the content type a request was sent with, when it has one. */
function mediaTypeOf(request: FastifyRequest): string {
  const type = request.headers['content-type']?.split(';')[0]?.trim();
  return type ? ` (not ${type})` : '';
}

type Validator = ((data: unknown) => boolean) & {
  errors?: FastifySchemaValidationError[] | null;
};

/**
 * Ajv's coercion makes a blank or whitespace string 0 (`"\t" == 0`): an integer in a path or
 * query string must be written as digits, or it is refused as its schema's type would refuse it.
 */
function digitsOnly(schema: unknown, validate: Validator): Validator {
  const properties = (schema as { properties?: Record<string, SchemaNode> }).properties ?? {};
  const integers = Object.entries(properties).filter(
    ([, property]) => property?.type === 'integer',
  );
  if (integers.length === 0) return validate;
  const checked: Validator = (data) => {
    const values = (data ?? {}) as Record<string, unknown>;
    for (const [name, property] of integers) {
      const value = values[name];
      const texts = Array.isArray(value) ? (value as unknown[]) : [value];
      if (texts.some((text) => typeof text === 'string' && !/^-?\d+$/.test(text))) {
        checked.errors = [
          {
            keyword: 'type',
            instancePath: `/${name}`,
            schemaPath: `#/properties/${name}/type`,
            params: { type: 'integer' },
            message: 'must be integer',
            parentSchema: property,
          } as FastifySchemaValidationError,
        ];
        return false;
      }
    }
    const valid = validate(data);
    checked.errors = validate.errors;
    return valid;
  };
  return checked;
}

/** Maps any error to `{ error: { code, message } }` with the right status. */
function toClientError(error: FastifyError | Error, request: FastifyRequest): MiniPushError {
  if (error instanceof MiniPushError) return error;
  const fastifyError = error as FastifyError;
  if (fastifyError.validation) return fromValidation(fastifyError);
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new BodyTooLargeError('body', 'request body is larger than the server accepts');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new UnsupportedMediaTypeError(
        `send the body as application/json${mediaTypeOf(request)}`,
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new BadRequestError('body', 'the JSON body is empty');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new BadRequestError('content-length', 'content-length does not match the body');
    default:
      break;
  }
  if (fastifyError.statusCode === 400 && error instanceof SyntaxError) {
    return new BadRequestError('body', `the body is not valid JSON: ${error.message}`);
  }
  if (
    fastifyError.statusCode !== undefined &&
    fastifyError.statusCode >= 400 &&
    fastifyError.statusCode < 500
  ) {
    return new BadRequestError('request', error.message);
  }
  return asClientError(error);
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
    trustProxy:
      options.trustProxy && options.trustProxy.length > 0 ? [...options.trustProxy] : false,
    // A business payload is data: a "__proto__" or "constructor" key is kept as it was sent
    // (JSON.parse makes it an own property; nothing merges bodies into other objects).
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    clientErrorHandler,
    frameworkErrors,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Query strings arrive as text and need coercion; JSON bodies must already have the right types.
  // verbose: errors carry their schema, whose x-error-code says which code they answer with.
  const queryAjv = new Ajv({
    verbose: true,
    coerceTypes: 'array',
    useDefaults: true,
    removeAdditional: false,
    strict: false,
  });
  const bodyAjv = new Ajv({
    verbose: true,
    coerceTypes: false,
    useDefaults: true,
    removeAdditional: false,
    strict: false,
  });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const validate = (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema);
    return httpPart === 'body' ? validate : digitsOnly(schema, validate);
  });

  for (const schema of SHARED_SCHEMAS) app.addSchema(schema);

  const notFound = methodAwareNotFound(app);
  app.setErrorHandler((error: FastifyError | Error, request, reply) => {
    // A method no route takes, refused before routing ended (a body without its content type):
    // what matters is the method.
    if (request.is404) {
      notFound(request, reply);
      return;
    }
    const clientError = toClientError(error, request);
    options.onClientError?.(clientError);
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
  // JSON is the only body MiniPush reads; a text/plain one is refused as such, not parsed.
  app.removeContentTypeParser('text/plain');

  const origins = options.corsOrigins ?? [];
  if (origins.length > 0) {
    // Credentials travel in Authorization, never in cookies: no credentialed CORS.
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : [...origins],
      methods: ['GET', 'HEAD', 'POST'],
      allowedHeaders: ['authorization', 'content-type'],
      maxAge: 600,
    });
  }

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
