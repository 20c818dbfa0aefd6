import { randomUUID } from 'node:crypto';
import websocket from '@fastify/websocket';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { Authenticator, Principal } from '../auth/authenticator.js';
import type { Config } from '../config.js';
import { MiniPushError, asClientError, type ErrorCode } from '../errors.js';
import type { ChangeFeed, HeadChange, Subscription } from '../log/log.js';
import type { Logger } from '../logger.js';
import type { MiniPushService } from '../service.js';
import type { HttpApp } from '../transports/http/app.js';
import { traceNudge } from '../telemetry/spans.js';
import { feedPageJson, type FeedPage } from '../queries/feed-event.js';
import type { SessionBus } from './session-bus.js';
import { SessionQuota, type SessionRecord } from './session-quota.js';
import {
  CLOSE_CODES,
  SUBPROTOCOL,
  parseClientMessage,
  tokenFromSubprotocols,
  type ClientRequest,
  type ReqId,
} from './ws-protocol.js';

/** The settings a hub works with; each is documented on {@link Config}. */
export type HubSettings = Pick<
  Config,
  | 'sessionQuota'
  | 'maxSessionsPerHub'
  | 'maxConnectionsPerIp'
  | 'nudgeWindowMs'
  | 'pingIntervalMs'
  | 'pongTimeoutMs'
  | 'wsMaxMessageBytes'
  | 'wsMaxBufferedBytes'
  | 'wsAllowedOrigins'
  | 'hubHeartbeatMs'
  | 'hubTimeoutMs'
  | 'e2eEnabled'
  | 'e2eMaxBodyBytes'
  | 'e2eRatePerMinute'
  | 'defaultLimit'
  | 'maxLimit'
>;

/** Seen by metrics: what the hub does. */
export interface HubObserver {
  onSessionOpened?(): void;
  onSessionClosed?(code: number): void;
  onKickoff?(): void;
  onNudgeSent?(latencyMs: number | null): void;
  onNudgeCoalesced?(): void;
  onUpgradeRefused?(reason: string): void;
  /** A WebSocket request answered: its type, time taken, and `ok` or the error code sent. */
  onRequest?(type: string, durationMs: number, outcome: string): void;
}

export interface HubOptions {
  readonly settings: HubSettings;
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  readonly feed: ChangeFeed;
  readonly bus: SessionBus;
  readonly logger: Logger;
  readonly hubId?: string;
  readonly now?: () => number;
  readonly observer?: HubObserver;
}

interface HeadState {
  headSeq: number;
  floorSeq: number;
  unreadCount: number;
  readVersion: number;
  logTime?: number;
}

interface Session {
  readonly id: string;
  readonly uid: number;
  readonly socket: WebSocket;
  readonly ip: string;
  readonly principal: Principal;
  /** Last state this client was told (hello or head); never go below it. */
  told: HeadState | null;
  /** Newer state that arrived before hello went out. */
  early: HeadState | null;
  awaitingPong: boolean;
  pingAt: number;
  inFlight: number;
  closed: boolean;
  /** Being closed for not reading; nothing more is queued for it. */
  dropping: boolean;
}

interface UserNudges {
  lastSentAt: number;
  pending: HeadState | null;
  timer: NodeJS.Timeout | null;
}

const MAX_IN_FLIGHT = 32;

/** A feed page answer, serialised with its stored bodies spliced in (see feedPageJson). */
class PageAnswer {
  constructor(readonly page: FeedPage) {}
}

/** A head message serialised for one user's sessions, and the state it says. */
interface HeadMessage {
  state: HeadState | null;
  bytes: Buffer | null;
}

function sameHead(a: HeadState, b: HeadState): boolean {
  return (
    a.headSeq === b.headSeq &&
    a.floorSeq === b.floorSeq &&
    a.unreadCount === b.unreadCount &&
    a.readVersion === b.readVersion
  );
}

function newer(a: HeadState, than: HeadState | null): boolean {
  if (!than) return true;
  return a.headSeq > than.headSeq || a.readVersion > than.readVersion || a.floorSeq > than.floorSeq;
}

function merge(a: HeadState | null, b: HeadState): HeadState {
  if (!a) return b;
  // Newest read state wins the unread count; heads only grow.
  const latest =
    b.readVersion > a.readVersion || (b.readVersion === a.readVersion && b.headSeq >= a.headSeq)
      ? b
      : a;
  return {
    headSeq: Math.max(a.headSeq, b.headSeq),
    floorSeq: Math.max(a.floorSeq, b.floorSeq),
    unreadCount: latest.unreadCount,
    readVersion: Math.max(a.readVersion, b.readVersion),
    ...(b.logTime !== undefined
      ? { logTime: b.logTime }
      : a.logTime !== undefined
        ? { logTime: a.logTime }
        : {}),
  };
}

/**
 * A WebSocket hub: authenticates sessions, tells each one its user's head seq as it changes
 * (coalesced per user), answers requests over the socket, and keeps the cluster-wide session
 * quota by exchanging open/close records with the other hubs.
 */
export class Hub {
  readonly hubId: string;
  private readonly sessions = new Map<string, Session>();
  private readonly byUid = new Map<number, Set<Session>>();
  private readonly byIp = new Map<string, number>();
  /** Upgrades admitted but not yet turned into sessions. */
  private connecting = 0;
  private readonly settleReservation = new WeakMap<object, () => void>();
  private readonly nudges = new Map<number, UserNudges>();
  private readonly e2eWindows = new Map<number, { start: number; count: number }>();
  private readonly quota: SessionQuota;
  private readonly log: Logger;
  private readonly now: () => number;
  private feedSubscription: Subscription | null = null;
  private busSubscription: Subscription | null = null;
  private keepAliveTimer: NodeJS.Timeout | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private closing = false;

  constructor(private readonly options: HubOptions) {
    this.hubId = options.hubId ?? randomUUID();
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ component: 'hub', hubId: this.hubId });
    this.quota = new SessionQuota(
      this.hubId,
      options.settings.sessionQuota,
      options.settings.hubTimeoutMs,
    );
  }

  get settings(): HubSettings {
    return this.options.settings;
  }

  /** Subscribes to head changes and session records; call before accepting sessions. */
  async start(): Promise<void> {
    this.feedSubscription = await this.options.feed.subscribe((changes) => this.onChanges(changes));
    this.busSubscription = await this.options.bus.subscribe((records) =>
      this.onSessionRecords(records),
    );
    const { pingIntervalMs, pongTimeoutMs, hubHeartbeatMs } = this.options.settings;
    const tick = Math.max(
      10,
      Math.min(1000, Math.floor(Math.min(pingIntervalMs, pongTimeoutMs) / 2)),
    );
    this.keepAliveTimer = setInterval(() => this.keepAlive(), tick);
    this.keepAliveTimer.unref();
    this.heartbeatTimer = setInterval(() => {
      this.publish({ type: 'heartbeat', hubId: this.hubId });
      for (const hub of this.quota.sweep(this.now()))
        this.log.warn({ hub }, 'hub went silent; its sessions stop counting');
    }, hubHeartbeatMs);
    this.heartbeatTimer.unref();
    this.publish({ type: 'heartbeat', hubId: this.hubId });
  }

  /** False once shutdown began. */
  isAccepting(): boolean {
    return !this.closing;
  }

  /** Receiving head changes and the other hubs' session records (for readiness). */
  isSubscribed(): boolean {
    const live = (s: Subscription | null) => s !== null && (s.isActive?.() ?? true);
    return live(this.feedSubscription) && live(this.busSubscription);
  }

  /** Live sessions and distinct users on this hub. */
  counts(): { sessions: number; users: number } {
    return { sessions: this.sessions.size, users: this.byUid.size };
  }

  /** Adds `/v1/ws` to the app. */
  async register(app: HttpApp): Promise<void> {
    const { settings } = this.options;
    await app.register(websocket, {
      options: {
        maxPayload: settings.wsMaxMessageBytes,
        perMessageDeflate: false,
        handleProtocols: (protocols: Set<string>) =>
          protocols.has(SUBPROTOCOL) ? SUBPROTOCOL : false,
      },
      preClose: (done: () => void) => {
        this.closeAll().then(done, done);
      },
      errorHandler: (error: Error & { code?: string }, socket: WebSocket) =>
        this.onSocketError(error, socket),
    });
    app.get(
      '/v1/ws',
      {
        websocket: true,
        preValidation: (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
          const refusal = this.refuseUpgrade(request);
          if (!refusal) {
            this.reserve(request);
            done();
            return;
          }
          this.options.observer?.onUpgradeRefused?.(refusal.error.code);
          void reply.code(refusal.status).send(refusal.error.toJSON());
        },
      },
      (socket: WebSocket, request: FastifyRequest) => {
        this.accept(socket, request);
      },
    );
  }

  private refuseUpgrade(request: FastifyRequest): { status: number; error: MiniPushError } | null {
    const { settings } = this.options;
    if (this.closing) {
      return {
        status: 503,
        error: new MiniPushError(
          'MINIPUSH_SHUTTING_DOWN',
          'this hub is shutting down; connect to another',
        ),
      };
    }
    const origin = request.headers.origin;
    if (
      settings.wsAllowedOrigins.length > 0 &&
      (origin === undefined || !settings.wsAllowedOrigins.includes(origin))
    ) {
      return {
        status: 403,
        error: new MiniPushError(
          'MINIPUSH_FORBIDDEN',
          `origin ${origin ?? '(none)'} is not allowed`,
        ),
      };
    }
    if (this.sessions.size + this.connecting >= settings.maxSessionsPerHub) {
      return {
        status: 503,
        error: new MiniPushError('MINIPUSH_UNAVAILABLE', 'this hub is full; try another or later'),
      };
    }
    if (
      settings.maxConnectionsPerIp > 0 &&
      (this.byIp.get(request.ip) ?? 0) >= settings.maxConnectionsPerIp
    ) {
      return {
        status: 429,
        error: new MiniPushError(
          'MINIPUSH_RATE_LIMITED',
          `too many connections from ${request.ip}`,
        ),
      };
    }
    return null;
  }

  /**
   * Counts a connection against its IP and the hub's capacity before the upgrade, so a burst of
   * concurrent upgrades cannot all pass the checks; released when the TCP connection ends.
   */
  private reserve(request: FastifyRequest): void {
    const ip = request.ip;
    this.byIp.set(ip, (this.byIp.get(ip) ?? 0) + 1);
    this.connecting++;
    let pending = true;
    this.settleReservation.set(request.raw, () => {
      if (pending) this.connecting--;
      pending = false;
    });
    request.raw.socket.once('close', () => {
      if (pending) this.connecting--;
      pending = false;
      const left = (this.byIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.byIp.delete(ip);
      else this.byIp.set(ip, left);
    });
  }

  private onSocketError(error: Error & { code?: string }, socket: WebSocket): void {
    // Protocol faults (oversize or malformed frames) are the client's; ws already sent the
    // close code, so they are not errors of ours.
    if (error.code?.startsWith('WS_ERR_')) this.log.debug({ err: error }, 'client protocol error');
    else this.log.warn({ err: error }, 'WebSocket error');
    socket.terminate();
  }

  /**
   * Lets go of the upgrade's HTTP objects. @fastify/websocket's error listener holds the Fastify
   * request and reply (and their logger), and the TCP socket holds the HTTP response and through
   * it the request with its headers: about 8 KiB per session, kept for nothing while it lives.
   */
  private release(socket: WebSocket, request: FastifyRequest): void {
    for (const listener of socket.listeners('error')) {
      socket.off('error', listener as (...args: unknown[]) => void);
    }
    socket.on('error', (error: Error & { code?: string }) => this.onSocketError(error, socket));
    const tcp = request.raw.socket as typeof request.raw.socket & {
      _httpMessage?: ServerResponse | null;
    };
    tcp._httpMessage?.detachSocket(tcp);
  }

  private accept(socket: WebSocket, request: FastifyRequest): void {
    // The reservation holds until the session is counted in `sessions` (after authentication).
    const settle = this.settleReservation.get(request.raw) ?? (() => undefined);
    this.settleReservation.delete(request.raw);
    const query = request.query as Record<string, unknown>;
    const token =
      (typeof query.token === 'string' && query.token !== '' ? query.token : null) ??
      tokenFromSubprotocols(request.headers['sec-websocket-protocol']);
    const ip = request.ip;
    this.release(socket, request);
    if (token === null) {
      this.refuse(
        socket,
        'MINIPUSH_UNAUTHENTICATED',
        'missing token: pass ?token=<user JWT>',
        CLOSE_CODES.unauthenticated,
      );
      return;
    }
    this.options.authenticator.authenticateToken(token, { remember: false }).then(
      (principal) => {
        if (principal.kind !== 'user') {
          this.refuse(
            socket,
            'MINIPUSH_FORBIDDEN',
            'sessions are for users: connect with a user JWT, not an API key',
            CLOSE_CODES.forbidden,
          );
          return;
        }
        if (socket.readyState !== socket.OPEN) return;
        this.open(socket, principal, ip);
        settle();
      },
      (err: unknown) => {
        const error =
          err instanceof MiniPushError
            ? err
            : new MiniPushError('MINIPUSH_UNAUTHENTICATED', 'invalid token');
        this.refuse(socket, error.code, error.message, CLOSE_CODES.unauthenticated);
      },
    );
  }

  private refuse(socket: WebSocket, code: ErrorCode, message: string, closeCode: number): void {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(JSON.stringify({ type: 'error', reqId: null, code, message }));
    socket.close(closeCode, code.slice(0, 100));
  }

  private open(socket: WebSocket, principal: Principal & { kind: 'user' }, ip: string): void {
    const session: Session = {
      id: randomUUID(),
      uid: principal.uid,
      socket,
      ip,
      principal,
      told: null,
      early: null,
      awaitingPong: false,
      pingAt: this.now(),
      inFlight: 0,
      closed: false,
      dropping: false,
    };
    this.sessions.set(session.id, session);
    let users = this.byUid.get(session.uid);
    if (!users) this.byUid.set(session.uid, (users = new Set()));
    users.add(session);
    this.quota.addLocal(session.id);
    this.options.observer?.onSessionOpened?.();

    socket.on('pong', () => {
      session.awaitingPong = false;
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) {
        this.send(session, {
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
      this.onMessage(session, text);
    });
    socket.on('close', (code) => this.onClose(session, code));

    this.publish({ type: 'open', uid: session.uid, sessionId: session.id, hubId: this.hubId });
    this.options.service.stats(principal, session.uid).then(
      (stats) => {
        if (session.closed) return;
        const state: HeadState = {
          headSeq: stats.headSeq,
          floorSeq: stats.floorSeq,
          unreadCount: stats.unreadCount,
          readVersion: stats.readVersion,
        };
        const { settings } = this.options;
        this.send(session, {
          type: 'hello',
          sessionId: session.id,
          hubId: this.hubId,
          ...state,
          limits: {
            sessionQuota: settings.sessionQuota,
            maxMessageBytes: settings.wsMaxMessageBytes,
            defaultLimit: settings.defaultLimit,
            maxLimit: settings.maxLimit,
            pingIntervalMs: settings.pingIntervalMs,
            nudgeWindowMs: settings.nudgeWindowMs,
            e2e: settings.e2eEnabled
              ? {
                  enabled: true,
                  maxBodyBytes: settings.e2eMaxBodyBytes,
                  ratePerMinute: settings.e2eRatePerMinute,
                }
              : { enabled: false },
          },
        });
        session.told = state;
        const early = session.early;
        session.early = null;
        if (early && newer(early, state)) this.tell(session, merge(state, early));
      },
      (err: unknown) => {
        this.log.warn({ err, uid: session.uid }, 'could not read the session state');
        this.send(session, {
          type: 'error',
          reqId: null,
          code: 'MINIPUSH_UNAVAILABLE',
          message: 'store unavailable; reconnect',
        });
        socket.close(CLOSE_CODES.serviceRestart, 'store unavailable');
      },
    );
  }

  private onClose(session: Session, code: number): void {
    if (session.closed) return;
    session.closed = true;
    this.sessions.delete(session.id);
    const users = this.byUid.get(session.uid);
    users?.delete(session);
    if (users && users.size === 0) {
      this.byUid.delete(session.uid);
      const nudges = this.nudges.get(session.uid);
      if (nudges?.timer) clearTimeout(nudges.timer);
      this.nudges.delete(session.uid);
    }
    this.quota.removeLocal(session.uid, session.id);
    if (!this.closing)
      this.publish({ type: 'close', uid: session.uid, sessionId: session.id, hubId: this.hubId });
    this.options.observer?.onSessionClosed?.(code);
  }

  /** Sends if the client keeps up; closes it when its unsent buffer passes the limit. */
  private send(session: Session, message: object | string | Buffer): void {
    const { socket } = session;
    if (session.closed || session.dropping || socket.readyState !== socket.OPEN) return;
    if (socket.bufferedAmount > this.options.settings.wsMaxBufferedBytes) {
      this.log.info(
        { uid: session.uid, buffered: socket.bufferedAmount },
        'closing a session that does not read',
      );
      socket.close(CLOSE_CODES.tooSlow, 'too slow: unsent buffer over the limit');
      // A client that reads nothing will not complete the close handshake either.
      setTimeout(() => socket.terminate(), 1000).unref();
      session.dropping = true;
      return;
    }
    socket.send(
      typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message),
      // A Buffer is a text frame too: the hub only speaks JSON text.
      { binary: false },
    );
  }

  // ----------------------------------------------------------------- nudges

  private onChanges(changes: readonly HeadChange[]): void {
    for (const change of changes) {
      const local = this.byUid.get(change.uid);
      if (!local) continue;
      const state: HeadState = {
        headSeq: change.headSeq,
        floorSeq: change.floorSeq,
        unreadCount: change.unreadCount,
        readVersion: change.readVersion,
        ...(change.logTime !== undefined ? { logTime: change.logTime } : {}),
      };
      traceNudge(change, local.size, () => this.nudge(change.uid, state));
    }
  }

  /**
   * At most one nudge per user per window: the first at once, later ones merged into one.
   * True when sent at once.
   */
  private nudge(uid: number, state: HeadState): boolean {
    const window = this.options.settings.nudgeWindowMs;
    let entry = this.nudges.get(uid);
    if (!entry)
      this.nudges.set(uid, (entry = { lastSentAt: -Infinity, pending: null, timer: null }));
    const now = this.now();
    if (entry.timer === null && now - entry.lastSentAt >= window) {
      entry.lastSentAt = now;
      this.deliver(uid, state);
      return true;
    }
    if (entry.pending) this.options.observer?.onNudgeCoalesced?.();
    entry.pending = merge(entry.pending, state);
    if (entry.timer === null) {
      const wait = Math.max(0, window - (now - entry.lastSentAt));
      const current = entry;
      entry.timer = setTimeout(() => {
        current.timer = null;
        const pending = current.pending;
        current.pending = null;
        if (pending) {
          current.lastSentAt = this.now();
          this.deliver(uid, pending);
        }
      }, wait);
    }
    return false;
  }

  private deliver(uid: number, state: HeadState): void {
    // A user's sessions were usually told the same before, so they get the same message:
    // serialise it once and hand every socket the same bytes.
    const encoded: HeadMessage = { state: null, bytes: null };
    for (const session of this.byUid.get(uid) ?? []) this.tell(session, state, encoded);
  }

  private tell(session: Session, state: HeadState, encoded?: HeadMessage): void {
    if (session.told === null) {
      session.early = merge(session.early, state);
      return;
    }
    if (!newer(state, session.told)) return;
    const next = merge(session.told, state);
    session.told = next;
    const reuse = encoded?.state && sameHead(encoded.state, next) ? encoded.bytes : null;
    const bytes =
      reuse ??
      Buffer.from(
        `{"type":"head","headSeq":${next.headSeq},"floorSeq":${next.floorSeq},` +
          `"unreadCount":${next.unreadCount},"readVersion":${next.readVersion}}`,
      );
    if (encoded) {
      encoded.state = next;
      encoded.bytes = bytes;
    }
    this.send(session, bytes);
    this.options.observer?.onNudgeSent?.(
      state.logTime !== undefined ? this.now() - state.logTime : null,
    );
  }

  // ----------------------------------------------------------------- requests

  private onMessage(session: Session, text: string): void {
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      this.send(session, {
        type: 'error',
        reqId: parsed.reqId,
        code: parsed.code,
        message: parsed.message,
      });
      return;
    }
    const { request } = parsed;
    if (request.type === 'ping') {
      this.send(session, { type: 'pong', reqId: request.reqId });
      return;
    }
    if (session.inFlight >= MAX_IN_FLIGHT) {
      this.send(session, {
        type: 'error',
        reqId: request.reqId,
        code: 'MINIPUSH_RATE_LIMITED',
        message: `at most ${MAX_IN_FLIGHT} requests may be in flight per session`,
      });
      return;
    }
    session.inFlight++;
    const started = performance.now();
    let outcome = 'ok';
    this.handle(session, request)
      .then(
        (payload) =>
          this.send(
            session,
            payload instanceof PageAnswer
              ? feedPageJson(
                  payload.page,
                  `"type":${JSON.stringify(request.type)},"reqId":${JSON.stringify(request.reqId)},`,
                )
              : { type: request.type, reqId: request.reqId, ...payload },
          ),
        (err: unknown) => {
          outcome = this.replyError(session, request.reqId, err);
        },
      )
      .finally(() => {
        session.inFlight--;
        this.options.observer?.onRequest?.(request.type, performance.now() - started, outcome);
      });
  }

  /** Answers a failed request with its error; returns the code sent. */
  private replyError(session: Session, reqId: ReqId | null, err: unknown): ErrorCode {
    const error = asClientError(err);
    if (error.code === 'MINIPUSH_INTERNAL') this.log.error({ err }, 'WebSocket request failed');
    this.send(session, { type: 'error', reqId, code: error.code, message: error.message });
    return error.code;
  }

  private async handle(session: Session, request: ClientRequest): Promise<object> {
    const { service } = this.options;
    const f = request.fields;
    const who = session.principal;
    const uid = session.uid;
    switch (request.type) {
      case 'diff':
        return new PageAnswer(await service.diff(who, uid, f.after ?? 0, f.limit));
      case 'fetch':
        return new PageAnswer(
          await service.fetch(who, uid, { from: f.from, to: f.to, order: f.order, limit: f.limit }),
        );
      case 'stats':
        return service.stats(who, uid);
      case 'readStates':
        return service.readStates(who, uid, f.upTo, f.format ?? 'roaring');
      case 'markRead':
        // Read-your-writes: answer once projected, so the client's next read sees the change.
        return service.markRead(
          who,
          uid,
          { seqs: f.seqs, upTo: f.upTo },
          { wait: f.wait !== false },
        );
      case 'markUnread':
        return service.markUnread(who, uid, { seqs: f.seqs }, { wait: f.wait !== false });
      case 'send':
        return this.sendMessage(session, f);
      case 'ping':
        return {};
      default: {
        const unreachable: never = request.type;
        throw new MiniPushError(
          'MINIPUSH_BAD_REQUEST',
          `unknown message type ${String(unreachable)}`,
        );
      }
    }
  }

  private async sendMessage(
    session: Session,
    fields: Readonly<Record<string, unknown>>,
  ): Promise<object> {
    const { settings } = this.options;
    if (!settings.e2eEnabled) {
      throw new MiniPushError(
        'MINIPUSH_FORBIDDEN',
        'end-to-end messages are disabled on this server',
      );
    }
    const size = Buffer.byteLength(JSON.stringify(fields.body ?? null));
    if (size > settings.e2eMaxBodyBytes) {
      throw new MiniPushError(
        'MINIPUSH_BODY_TOO_LARGE',
        `body is ${size} bytes as JSON; the limit for messages is ${settings.e2eMaxBodyBytes}`,
      );
    }
    const now = this.now();
    const window = this.e2eWindows.get(session.uid);
    if (!window || now - window.start >= 60_000) {
      this.e2eWindows.set(session.uid, { start: now, count: 1 });
    } else if (window.count >= settings.e2eRatePerMinute) {
      throw new MiniPushError(
        'MINIPUSH_RATE_LIMITED',
        `at most ${settings.e2eRatePerMinute} messages per minute; try again in ${Math.ceil((window.start + 60_000 - now) / 1000)} s`,
      );
    } else {
      window.count++;
    }
    return this.options.service.publishAs(session.uid, { to: fields.to, body: fields.body });
  }

  // ----------------------------------------------------------------- quota and liveness

  private publish(record: SessionRecord): void {
    this.options.bus.publish(record).catch((err: unknown) => {
      this.log.warn({ err, record: record.type }, 'could not publish a session record');
    });
  }

  private onSessionRecords(records: readonly SessionRecord[]): void {
    const now = this.now();
    for (const record of records) {
      for (const sessionId of this.quota.apply(record, now)) this.kick(sessionId);
    }
  }

  private kick(sessionId: string): void {
    const session = this.sessions.get(sessionId);
    if (!session) return;
    this.options.observer?.onKickoff?.();
    this.send(session, {
      type: 'kickoff',
      reason: `more than ${this.options.settings.sessionQuota} sessions for this user; this, the oldest, is closed`,
    });
    session.socket.close(CLOSE_CODES.kickedOff, 'kicked off: session quota');
  }

  private keepAlive(): void {
    const now = this.now();
    const { pingIntervalMs, pongTimeoutMs } = this.options.settings;
    for (const session of this.sessions.values()) {
      const { socket } = session;
      if (socket.readyState !== socket.OPEN) continue;
      if (session.awaitingPong) {
        if (now - session.pingAt > pongTimeoutMs) {
          socket.close(CLOSE_CODES.pingTimeout, 'ping timeout');
          setTimeout(() => socket.terminate(), 1000).unref();
        }
      } else if (now - session.pingAt >= pingIntervalMs) {
        session.awaitingPong = true;
        session.pingAt = now;
        socket.ping();
      }
    }
  }

  /** Closes every session with "reconnect elsewhere" and tells the other hubs we left. */
  private async closeAll(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = [...this.sessions.values()].map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.socket.readyState === session.socket.CLOSED) {
            resolve();
            return;
          }
          session.socket.once('close', () => resolve());
          session.socket.close(CLOSE_CODES.serviceRestart, 'server shutting down; reconnect');
          setTimeout(() => {
            session.socket.terminate();
            resolve();
          }, 2000).unref();
        }),
    );
    await Promise.all(closed);
    await this.options.bus.publish({ type: 'leave', hubId: this.hubId }).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.closeAll();
    if (this.keepAliveTimer) clearInterval(this.keepAliveTimer);
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    for (const entry of this.nudges.values()) if (entry.timer) clearTimeout(entry.timer);
    this.nudges.clear();
    await this.feedSubscription?.close();
    await this.busSubscription?.close();
  }
}
