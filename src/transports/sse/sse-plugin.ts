import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { Authenticator, Principal } from '../../auth/authenticator.js';
import {
  ForbiddenError,
  MiniPushError,
  ShuttingDownError,
  UnauthenticatedError,
} from '../../errors.js';
import type { Hub } from '../../hubs/hub.js';
import type { Session, SessionSocket } from '../../hubs/session-registry.js';
import type { SharedMessage } from '../../hubs/shared-message.js';
import type { Logger } from '../../logger.js';
import {
  compareResume,
  parseEventId,
  SSE_PATH,
  type ResumePoint,
  type ResumeResult,
  type SseCloseMessage,
} from '../../protocol/sse.js';
import type { UpgradeAdmission } from '../ws/admission.js';
import { PING, retryField, sseEvent } from './event-stream.js';

/** Seen by metrics: streams refused before a session opened, and how resumes compared. */
export interface SseObserver {
  onSseRefused?(reason: string): void;
  onSseResume?(result: ResumeResult): void;
}

export interface SseRoutesOptions {
  readonly hub: Hub;
  readonly authenticator: Authenticator;
  /** The WebSocket's admission: one per-IP count and one hub capacity for both transports. */
  readonly admission: UpgradeAdmission;
  readonly logger: Logger;
  readonly observer?: SseObserver;
  /** Uniform numbers in [0, 1), for the `retry:` jitter. */
  readonly random?: () => number;
}

/**
 * `retry:` is drawn per stream from this range (ms): a browser's EventSource reconnects after
 * exactly that long, so a hub that restarts does not get all its clients back at one instant.
 */
const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 5000;

/** The close code a session gets when its client ended the stream (as a browser leaving does). */
const CLIENT_WENT_AWAY = 1001;

function bearerToken(authorization: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  return match ? match[1]! : null;
}

/** The head state a hello tells, or null for another message. */
function helloState(data: string | Buffer): ResumePoint | null {
  let message: unknown;
  try {
    message = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof message !== 'object' || message === null) return null;
  const { type, headSeq, readVersion } = message as Record<string, unknown>;
  return type === 'hello' && typeof headSeq === 'number' && typeof readVersion === 'number'
    ? { headSeq, readVersion }
    : null;
}

/**
 * An SSE response as the hub drives sessions. No pongs: a keep-alive comment that the kernel
 * took counts as answered, so a connection whose writes stopped draining (a dead peer, a
 * reader that stopped) is closed after the pong timeout, like a WebSocket that does not pong.
 */
class SseSocket implements SessionSocket {
  session: Session | null = null;
  /** The code this end closed with; null while open, or when the client ended the stream. */
  closeCode: number | null = null;
  private greeted = false;

  constructor(
    private readonly res: ServerResponse,
    private readonly onHello: (state: ResumePoint) => void,
  ) {}

  get bufferedAmount(): number {
    // The response's own queue and its socket's: what was written but has not left.
    return this.res.writableLength;
  }

  isOpen(): boolean {
    return this.closeCode === null && !this.res.writableEnded && !this.res.destroyed;
  }

  send(data: string | Buffer): void {
    if (!this.isOpen()) return;
    if (!this.greeted) {
      // The first message is the hello (or the error of a greeting that failed): parsed once.
      this.greeted = true;
      const state = helloState(data);
      if (state) this.onHello(state);
    }
    this.res.write(sseEvent(typeof data === 'string' ? Buffer.from(data) : data));
  }

  sendShared(message: SharedMessage): void {
    if (this.isOpen()) this.res.write(message.encoded(sseEvent));
  }

  /** Ends the stream with a `close` event, the SSE stand-in for a close frame. */
  close(code: number, reason: string): void {
    if (!this.isOpen()) return;
    this.closeCode = code;
    const message: SseCloseMessage = { type: 'close', code, reason };
    this.res.end(sseEvent(Buffer.from(JSON.stringify(message))));
  }

  terminate(): void {
    this.res.destroy();
  }

  ping(): void {
    if (!this.isOpen()) return;
    const session = this.session;
    this.res.write(PING, (err) => {
      if (!err && session) session.awaitingPong = false;
    });
  }
}

/**
 * `GET /v1/sse`: the hub's sessions over Server-Sent Events, for clients that cannot hold a
 * WebSocket (docs/sse.md). The same admission, authentication, quota and messages as `/v1/ws`;
 * one-way, so requests go over REST.
 */
export async function sseRoutes(app: FastifyInstance, options: SseRoutesOptions): Promise<void> {
  const { hub, authenticator, admission, observer } = options;
  const log = options.logger.child({ component: 'sse' });
  const random = options.random ?? Math.random;

  /** The user the stream's token names; throws the error the client is answered with. */
  const authenticate = async (request: FastifyRequest): Promise<Principal & { kind: 'user' }> => {
    const query = request.query as { token?: string };
    const token =
      bearerToken(request.headers.authorization) ??
      (query.token !== undefined && query.token !== '' ? query.token : null);
    if (token === null) {
      throw new UnauthenticatedError(
        'missing token: send Authorization: Bearer <user JWT> or pass ?token=<user JWT>',
      );
    }
    let principal: Principal;
    try {
      principal = await authenticator.authenticateToken(token, { remember: false });
    } catch (err) {
      throw err instanceof MiniPushError ? err : new UnauthenticatedError('invalid token');
    }
    if (principal.kind !== 'user') {
      throw new ForbiddenError('sessions are for users: connect with a user JWT, not an API key');
    }
    return principal;
  };

  app.get(
    SSE_PATH,
    {
      schema: {
        // A stream, described in docs/sse.md as /v1/ws is in docs/websocket.md.
        hide: true,
        querystring: Type.Object({
          token: Type.Optional(Type.String()),
          lastEventId: Type.Optional(Type.String()),
        }),
      },
    },
    async (request, reply) => {
      const refusal = admission.refusal(request);
      if (refusal) {
        observer?.onSseRefused?.(refusal.code);
        throw refusal;
      }
      const res = reply.raw;
      admission.admit(request, res);
      let user: Principal & { kind: 'user' };
      try {
        user = await authenticate(request);
      } finally {
        // Refused or not, it no longer waits to become a session.
        admission.settled(request);
      }
      if (!hub.isAccepting()) {
        throw new ShuttingDownError('this hub is shutting down; connect to another');
      }
      if (res.destroyed) {
        // The client left while its token was checked.
        reply.hijack();
        return reply;
      }
      const query = request.query as { lastEventId?: string };
      const lastEventId = request.headers['last-event-id'];
      const resume = parseEventId(
        typeof lastEventId === 'string' ? lastEventId : (query.lastEventId ?? null),
      );

      reply.hijack();
      // CORS and the like, set by hooks on the reply, that hijacking would otherwise lose.
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value !== undefined)
          res.setHeader(name, typeof value === 'number' ? String(value) : value);
      }
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        // nginx buffers proxied responses unless told not to; events must flow one by one.
        'x-accel-buffering': 'no',
      });
      res.flushHeaders();
      res.write(retryField(RETRY_MIN_MS + random() * (RETRY_MAX_MS - RETRY_MIN_MS)));

      const socket = new SseSocket(res, (state) => {
        const result = compareResume(state, resume);
        observer?.onSseResume?.(result);
        if (result === 'ahead') {
          log.debug({ uid: user.uid, resume, state }, 'Last-Event-ID ahead of the store');
        }
      });
      res.on('error', (err) => log.debug({ err }, 'SSE stream error'));
      const session = hub.open(socket, user, request.ip);
      socket.session = session;
      res.once('close', () => hub.closed(session, socket.closeCode ?? CLIENT_WENT_AWAY));
      return reply;
    },
  );
}
