import websocket from '@fastify/websocket';
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Authenticator } from '../../auth/authenticator.js';
import { MiniPushError, UnauthenticatedError, type ErrorCode } from '../../errors.js';
import type { Hub } from '../../hubs/hub.js';
import type { Session, SessionSocket } from '../../hubs/session-registry.js';
import type { Logger } from '../../logger.js';
import { CLOSE_CODES, SUBPROTOCOL } from '../../protocol/websocket.js';
import type { MiniPushService } from '../../service.js';
import { UpgradeAdmission, type AdmissionSettings } from './admission.js';
import { textFrame } from './frame.js';
import { tokenFromSubprotocols } from './parse-request.js';
import { MAX_IN_FLIGHT, WebSocketRequests, type RequestObserver } from './requests.js';

/** Seen by metrics: upgrades refused and requests answered. */
export interface WebSocketObserver extends RequestObserver {
  onUpgradeRefused?(reason: string): void;
}

export interface WebSocketRoutesOptions {
  readonly hub: Hub;
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  readonly settings: AdmissionSettings & {
    /** Largest message a client may send, in bytes. */
    readonly wsMaxMessageBytes: number;
  };
  readonly logger: Logger;
  readonly observer?: WebSocketObserver;
  /**
   * Admission shared with the other session transport (SSE), so per-IP limits and the hub's
   * capacity count both. Default: one of its own.
   */
  readonly admission?: UpgradeAdmission;
}

/** Admission for the hub's session transports: its capacity, origins and per-IP limits. */
export function sessionAdmission(hub: Hub, settings: AdmissionSettings): UpgradeAdmission {
  return new UpgradeAdmission(settings, {
    isAccepting: () => hub.isAccepting(),
    sessions: () => hub.counts().sessions,
  });
}

/** A `ws` socket, over the TCP connection `tcp`, as the hub drives sessions. */
function sessionSocket(socket: WebSocket, tcp: Duplex): SessionSocket {
  return {
    // ws's own count adds the frames it holds back to compress, which it never does here.
    get bufferedAmount() {
      return tcp.writableLength;
    },
    isOpen: () => socket.readyState === socket.OPEN,
    // A Buffer is a text frame too: the hub only speaks JSON text.
    send: (data) => socket.send(data, { binary: false }),
    // A message for many sessions is framed once and written whole, in one call. `ws` writes
    // its own frames to the same connection synchronously (no compression, no Blobs here), so
    // frames written beside it stay in order.
    sendShared: (message) => {
      if (tcp.writable) tcp.write(message.encoded(textFrame));
    },
    close: (code, reason) => socket.close(code, reason),
    terminate: () => socket.terminate(),
    ping: () => socket.ping(),
  };
}

function refuse(socket: WebSocket, code: ErrorCode, message: string, closeCode: number): void {
  if (socket.readyState !== socket.OPEN) return;
  socket.send(JSON.stringify({ type: 'error', reqId: null, code, message }));
  socket.close(closeCode, code.slice(0, 100));
}

/**
 * Lets go of the upgrade's HTTP objects. @fastify/websocket's error listener holds the Fastify
 * request and reply (and their logger), and the TCP socket holds the HTTP response and through
 * it the request with its headers: about 8 KiB per session, kept for nothing while it lives.
 */
function releaseUpgrade(
  socket: WebSocket,
  request: FastifyRequest,
  onError: (error: Error & { code?: string }) => void,
): void {
  for (const listener of socket.listeners('error')) {
    socket.off('error', listener as (...args: unknown[]) => void);
  }
  socket.on('error', onError);
  const tcp = request.raw.socket as typeof request.raw.socket & {
    _httpMessage?: ServerResponse | null;
  };
  tcp._httpMessage?.detachSocket(tcp);
}

/**
 * `/v1/ws`: admits upgrades, authenticates the user's token, hands the socket to the hub as a
 * session, and answers its requests (docs/websocket.md).
 */
export async function websocketRoutes(
  app: FastifyInstance,
  options: WebSocketRoutesOptions,
): Promise<void> {
  const { hub, authenticator, settings, observer } = options;
  const log = options.logger.child({ component: 'ws' });
  const admission = options.admission ?? sessionAdmission(hub, settings);
  const requests = new WebSocketRequests(
    hub,
    options.service,
    authenticator,
    options.logger,
    observer,
  );

  const onSocketError = (error: Error & { code?: string }, socket: WebSocket) => {
    // Protocol faults (oversize or malformed frames) are the client's; ws already sent the
    // close code, so they are not errors of ours.
    if (error.code?.startsWith('WS_ERR_')) log.debug({ err: error }, 'client protocol error');
    else log.warn({ err: error }, 'WebSocket error');
    socket.terminate();
  };
  /**
   * Made here, not in `accept`: a closure made there would share `accept`'s V8 context, which
   * holds the upgrade request for the promise callbacks, for as long as the session lives.
   */
  const errorListener = (socket: WebSocket) => (error: Error & { code?: string }) =>
    onSocketError(error, socket);

  /**
   * Listens from the first frame: a request sent while the token is being checked (a client
   * that sends on `open`) waits in order and is answered once the session is greeted.
   */
  const listen = (socket: WebSocket) => {
    const early: Array<{ data: WebSocket.RawData; isBinary: boolean }> = [];
    let session: Session | null = null;
    const onFrame = (data: WebSocket.RawData, isBinary: boolean) => {
      if (!session || session.told === null) {
        if (early.length < MAX_IN_FLIGHT) early.push({ data, isBinary });
        else {
          socket.send(
            JSON.stringify({
              type: 'error',
              reqId: null,
              code: 'MINIPUSH_RATE_LIMITED',
              message: `at most ${MAX_IN_FLIGHT} requests may wait for hello`,
            }),
          );
        }
        return;
      }
      if (isBinary) {
        hub.send(session, {
          type: 'error',
          reqId: null,
          code: 'MINIPUSH_BAD_REQUEST',
          message: 'binary frames are not supported; send JSON text',
        });
        socket.close(CLOSE_CODES.unsupportedData, 'binary frames are not supported');
        return;
      }
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      requests.onMessage(session, text);
    };
    socket.on('message', onFrame);
    return {
      /** The connection became this session; frames so far are answered after hello. */
      admitted(admittedSession: Session) {
        session = admittedSession;
        socket.on('pong', () => {
          admittedSession.awaitingPong = false;
        });
        socket.on('close', (code) => hub.closed(admittedSession, code));
      },
      /** Hello went out: the frames that came before it, in order. */
      greeted: () => {
        for (const frame of early.splice(0)) onFrame(frame.data, frame.isBinary);
      },
    };
  };

  const accept = (socket: WebSocket, request: FastifyRequest) => {
    const query = request.query as Record<string, unknown>;
    const token =
      (typeof query.token === 'string' && query.token !== '' ? query.token : null) ??
      tokenFromSubprotocols(request.headers['sec-websocket-protocol']);
    const ip = request.ip;
    const tcp = request.raw.socket;
    const frames = listen(socket);
    releaseUpgrade(socket, request, errorListener(socket));
    if (token === null) {
      refuse(
        socket,
        'MINIPUSH_UNAUTHENTICATED',
        'missing token: pass ?token=<user JWT>',
        CLOSE_CODES.unauthenticated,
      );
      return;
    }
    authenticator.authenticateToken(token, { remember: false }).then(
      (principal) => {
        if (principal.kind !== 'user') {
          refuse(
            socket,
            'MINIPUSH_FORBIDDEN',
            'sessions are for users: connect with a user JWT, not an API key',
            CLOSE_CODES.forbidden,
          );
          return;
        }
        if (socket.readyState !== socket.OPEN) return;
        // frames.greeted as it is: an arrow made here would keep this context, and the request.
        const session = hub.open(sessionSocket(socket, tcp), principal, ip, frames.greeted);
        frames.admitted(session);
        admission.settled(request);
      },
      (err: unknown) => {
        const error =
          err instanceof MiniPushError ? err : new UnauthenticatedError('invalid token');
        refuse(socket, error.code, error.message, CLOSE_CODES.unauthenticated);
      },
    );
  };

  await app.register(websocket, {
    options: {
      maxPayload: settings.wsMaxMessageBytes,
      // Never on: sendShared writes whole frames beside ws's own, which needs ws never to
      // hold a frame back to compress it.
      perMessageDeflate: false,
      handleProtocols: (protocols: Set<string>) =>
        protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
    },
    preClose: (done: () => void) => {
      hub.closeAll().then(done, done);
    },
    errorHandler: (error: Error & { code?: string }, socket: WebSocket) =>
      onSocketError(error, socket),
  });
  app.get(
    '/v1/ws',
    {
      websocket: true,
      preValidation: (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
        const refusal = admission.refusal(request);
        if (!refusal) {
          admission.admit(request);
          done();
          return;
        }
        observer?.onUpgradeRefused?.(refusal.code);
        void reply.code(refusal.httpStatus).send(refusal.toJSON());
      },
    },
    accept,
  );
}
