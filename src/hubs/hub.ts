import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/authenticator.js';
import type { Config } from '../config.js';
import type { HeadState } from '../domain/head-state.js';
import type { ChangeFeed, Subscription } from '../log/log.js';
import type { Logger } from '../logger.js';
import { CLOSE_CODES, type HelloMessage, type SessionLimits } from '../protocol/websocket.js';
import type { MiniPushService } from '../service.js';
import { KeepAlive } from './keep-alive.js';
import { Nudger, type NudgeObserver, type NudgerOptions } from './nudger.js';
import { QuotaExchange } from './quota-exchange.js';
import type { SessionBus } from './session-bus.js';
import { SessionRegistry, type Session, type SessionSocket } from './session-registry.js';

/** The settings a hub works with; each is documented on {@link Config}. */
export type HubSettings = Pick<
  Config,
  | 'sessionQuota'
  | 'maxSessionsPerHub'
  | 'nudgeWindowMs'
  | 'pingIntervalMs'
  | 'pongTimeoutMs'
  | 'wsMaxMessageBytes'
  | 'wsMaxBufferedBytes'
  | 'hubHeartbeatMs'
  | 'hubTimeoutMs'
  | 'e2eEnabled'
  | 'e2eMaxBodyBytes'
  | 'e2eRatePerMinute'
  | 'defaultLimit'
  | 'maxLimit'
>;

/** Seen by metrics and tracing: what the hub does with sessions and nudges. */
export interface HubObserver extends NudgeObserver {
  onSessionOpened?(): void;
  onSessionClosed?(code: number): void;
  onKickoff?(): void;
}

export interface HubOptions {
  readonly settings: HubSettings;
  readonly service: MiniPushService;
  /** The heads stream the projectors announce head changes on. */
  readonly feed: ChangeFeed;
  readonly bus: SessionBus;
  readonly logger: Logger;
  readonly hubId?: string;
  readonly now?: () => number;
  readonly observer?: HubObserver;
  /** Wraps the nudge of each head change (tracing); see the nudger's `around`. */
  readonly aroundNudge?: NudgerOptions['around'];
}

/** How long shutdown waits for a session's closing handshake. */
const CLOSE_GRACE_MS = 2000;

/**
 * A hub: keeps its users' live sessions, tells each its user's head as it changes (through the
 * nudger), and keeps the cluster-wide session quota by exchanging open/close records with the
 * other hubs. Transports (src/transports/ws) admit connections and hand them over as sessions.
 */
export class Hub {
  readonly hubId: string;
  readonly registry: SessionRegistry;
  private readonly nudger: Nudger;
  private readonly quota: QuotaExchange;
  private readonly keepAlive: KeepAlive;
  private readonly log: Logger;
  private readonly now: () => number;
  private feedSubscription: Subscription | null = null;
  private closing = false;
  /** Shutdown waiting for these sessions' closes. */
  private readonly whenClosed = new Map<Session, () => void>();

  constructor(private readonly options: HubOptions) {
    const { settings } = options;
    this.hubId = options.hubId ?? randomUUID();
    this.now = options.now ?? Date.now;
    this.log = options.logger.child({ component: 'hub', hubId: this.hubId });
    this.registry = new SessionRegistry(settings.wsMaxBufferedBytes, (session) =>
      this.log.info(
        { uid: session.uid, buffered: session.socket.bufferedAmount },
        'closing a session that does not read',
      ),
    );
    this.nudger = new Nudger({
      registry: this.registry,
      windowMs: settings.nudgeWindowMs,
      now: this.now,
      ...(options.observer ? { observer: options.observer } : {}),
      ...(options.aroundNudge ? { around: options.aroundNudge } : {}),
    });
    this.quota = new QuotaExchange({
      hubId: this.hubId,
      bus: options.bus,
      sessionQuota: settings.sessionQuota,
      heartbeatMs: settings.hubHeartbeatMs,
      hubTimeoutMs: settings.hubTimeoutMs,
      now: this.now,
      logger: this.log,
      onOverQuota: (sessionId) => this.kick(sessionId),
    });
    this.keepAlive = new KeepAlive({
      registry: this.registry,
      pingIntervalMs: settings.pingIntervalMs,
      pongTimeoutMs: settings.pongTimeoutMs,
      now: this.now,
      onExpired: (session) => this.expire(session),
    });
  }

  get settings(): HubSettings {
    return this.options.settings;
  }

  /** Subscribes to head changes and session records; call before accepting sessions. */
  async start(): Promise<void> {
    this.feedSubscription = await this.options.feed.subscribe((changes) =>
      this.nudger.onChanges(changes),
    );
    await this.quota.start();
    this.keepAlive.start();
  }

  /** False once shutdown began. */
  isAccepting(): boolean {
    return !this.closing;
  }

  /** Receiving head changes and the other hubs' session records (for readiness). */
  isSubscribed(): boolean {
    const feed = this.feedSubscription;
    return feed !== null && (feed.isActive?.() ?? true) && this.quota.isSubscribed();
  }

  /** Live sessions and distinct users on this hub. */
  counts(): { sessions: number; users: number } {
    return this.registry.counts();
  }

  /**
   * Makes an authenticated connection a session: counts it in the quota, tells the other hubs,
   * and greets it with its user's state. The transport reports its close with {@link closed}.
   */
  open(
    socket: SessionSocket,
    principal: Principal & { kind: 'user' },
    ip: string,
    /** Called once hello went out. */
    onGreeted?: () => void,
  ): Session {
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
    this.registry.add(session);
    this.quota.opened(session.uid, session.id);
    this.options.observer?.onSessionOpened?.();
    this.greet(session, onGreeted);
    return session;
  }

  /** The transport saw the session's connection close. */
  closed(session: Session, code: number): void {
    if (session.closed) return;
    session.closed = true;
    if (this.registry.remove(session)) this.nudger.forget(session.uid);
    this.quota.closed(session.uid, session.id, !this.closing);
    this.options.observer?.onSessionClosed?.(code);
    this.whenClosed.get(session)?.();
    this.whenClosed.delete(session);
  }

  /**
   * Ends a session whose token expired, if it has: true when it did. A session lives no longer
   * than its token; a `refresh` with a new token keeps it open.
   */
  expireIfDue(session: Session): boolean {
    const expiresAt = session.principal.expiresAt;
    if (expiresAt === undefined || this.now() < expiresAt) return false;
    this.expire(session);
    return true;
  }

  private expire(session: Session): void {
    if (session.dropping) return;
    session.dropping = true;
    const expiresAt = new Date(session.principal.expiresAt ?? 0).toISOString();
    // Sent past the backpressure check: it is the last word of a session that is going.
    session.socket.send(
      JSON.stringify({
        type: 'error',
        reqId: null,
        code: 'MINIPUSH_TOKEN_EXPIRED',
        message: `the session's token expired at ${expiresAt}: send refresh with a new token before it expires, or reconnect with one`,
      }),
    );
    session.socket.close(CLOSE_CODES.tokenExpired, 'token expired');
  }

  /** Sends to a session if its client keeps up (see {@link SessionRegistry.send}). */
  send(session: Session, message: object | string | Buffer): void {
    this.registry.send(session, message);
  }

  private greet(session: Session, onGreeted?: () => void): void {
    this.options.service.stats(session.principal, session.uid).then(
      (stats) => {
        if (session.closed) return;
        const state: HeadState = {
          headSeq: stats.headSeq,
          floorSeq: stats.floorSeq,
          unreadCount: stats.unreadCount,
          unseenCount: stats.unseenCount,
          archivedCount: stats.archivedCount,
          readVersion: stats.readVersion,
        };
        const hello: HelloMessage = {
          type: 'hello',
          sessionId: session.id,
          hubId: this.hubId,
          ...state,
          limits: this.limits(),
          ...(session.principal.expiresAt === undefined
            ? {}
            : { tokenExpiresAt: session.principal.expiresAt }),
        };
        this.send(session, hello);
        this.nudger.greeted(session, state);
        onGreeted?.();
      },
      (err: unknown) => {
        this.log.warn({ err, uid: session.uid }, 'could not read the session state');
        this.send(session, {
          type: 'error',
          reqId: null,
          code: 'MINIPUSH_UNAVAILABLE',
          message: 'store unavailable; reconnect',
        });
        session.socket.close(CLOSE_CODES.serviceRestart, 'store unavailable');
      },
    );
  }

  private limits(): SessionLimits {
    const { settings } = this.options;
    return {
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
    };
  }

  private kick(sessionId: string): void {
    const session = this.registry.get(sessionId);
    if (!session) return;
    this.options.observer?.onKickoff?.();
    this.send(session, {
      type: 'kickoff',
      reason: `more than ${this.options.settings.sessionQuota} sessions for this user; this, the oldest, is closed`,
    });
    session.socket.close(CLOSE_CODES.kickedOff, 'kicked off: session quota');
  }

  /** Closes every session with "reconnect elsewhere" and tells the other hubs we left. */
  async closeAll(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = [...this.registry.all()].map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.closed) {
            resolve();
            return;
          }
          const timer = setTimeout(() => {
            session.socket.terminate();
            resolve();
          }, CLOSE_GRACE_MS);
          timer.unref();
          this.whenClosed.set(session, () => {
            clearTimeout(timer);
            resolve();
          });
          session.socket.close(CLOSE_CODES.serviceRestart, 'server shutting down; reconnect');
        }),
    );
    await Promise.all(closed);
    await this.quota.leave();
  }

  async close(): Promise<void> {
    await this.closeAll();
    this.keepAlive.stop();
    this.nudger.close();
    await this.feedSubscription?.close();
    await this.quota.close();
  }
}
