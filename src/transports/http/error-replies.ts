import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import {
  BadRequestError,
  HeadersTooLargeError,
  MethodNotAllowedError,
  NotFoundError,
  type MiniPushError,
} from '../../errors.js';

/**
 * The answers Fastify would otherwise give in its own shape: requests Node's HTTP parser
 * refuses, URLs the router cannot read, routes that do not exist, methods a route does not
 * take. Every one is `{ error: { code, message } }` with the right status.
 */

function rawReply(socket: Socket, error: MiniPushError, reason: string): void {
  if (!socket.writable) return;
  const body = JSON.stringify(error.toJSON());
  socket.end(
    `HTTP/1.1 ${error.httpStatus} ${reason}\r\nConnection: close\r\n` +
      `Content-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** For Fastify's `clientErrorHandler`: Node refused the request before Fastify saw it. */
export function clientErrorHandler(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') {
    socket.destroy();
    return;
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    rawReply(
      socket,
      new HeadersTooLargeError('the request headers are larger than the server accepts (16 KiB)'),
      'Request Header Fields Too Large',
    );
    return;
  }
  rawReply(
    socket,
    new BadRequestError('request', `malformed HTTP request (${err.code ?? err.message})`),
    'Bad Request',
  );
}

/** For Fastify's `frameworkErrors`: a URL the router cannot decode, and the like. */
export function frameworkErrors(
  error: FastifyError,
  _request: FastifyRequest,
  reply: FastifyReply,
): void {
  const answer =
    error.code === 'FST_ERR_BAD_URL'
      ? new BadRequestError(
          'url',
          `${error.message}: percent-encode the path as UTF-8 (a literal % is %25)`,
        )
      : new BadRequestError('request', error.message);
  void reply.code(answer.httpStatus).send(answer.toJSON());
}

/** A route's path as a pattern a concrete path is tested against (`:uid` is one segment). */
function pathPattern(url: string): RegExp {
  const source = url
    .split('/')
    .map((segment) =>
      segment.startsWith(':') ? '[^/]+' : segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'),
    )
    .join('/');
  return new RegExp(`^${source}/?$`);
}

/**
 * Remembers every route as it is added, so the not-found handler can tell a path that exists
 * under another method (405 with `Allow`) from one that does not exist at all (404).
 */
export function methodAwareNotFound(
  app: FastifyInstance,
  hint = '',
): (request: FastifyRequest, reply: FastifyReply) => void {
  const routes: Array<{ methods: string[]; pattern: RegExp }> = [];
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    routes.push({ methods: methods.map(String), pattern: pathPattern(route.url) });
  });
  const notFound = (request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '';
    const allowed = [
      ...new Set(routes.filter((r) => r.pattern.test(path)).flatMap((r) => r.methods)),
    ].sort();
    if (allowed.length > 0) {
      const error = new MethodNotAllowedError(
        `${request.method} is not allowed on ${path}; use ${allowed.join(', ')}`,
      );
      void reply.code(405).header('allow', allowed.join(', ')).send(error.toJSON());
      return;
    }
    void reply
      .code(404)
      .send(new NotFoundError(`no route ${request.method} ${path}${hint}`).toJSON());
  };
  app.setNotFoundHandler(notFound);
  return notFound;
}
