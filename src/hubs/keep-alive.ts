import { CLOSE_CODES } from '../protocol/websocket.js';
import type { Session, SessionRegistry } from './session-registry.js';

export interface KeepAliveOptions {
  readonly registry: SessionRegistry;
  /** A session is pinged after this many ms without one. */
  readonly pingIntervalMs: number;
  /** A session that does not answer a ping within this many ms is closed. */
  readonly pongTimeoutMs: number;
  readonly now: () => number;
  /** A session's token expired: it must go. */
  readonly onExpired: (session: Session) => void;
}

/** A client that ignores the close frame too is cut this long after it. */
const TERMINATE_AFTER_MS = 1000;

/**
 * Sessions one turn of the event loop looks at. A sweep of 10,000 sessions whose pings fall due
 * together (they opened together) held the hub's thread 20–50 ms every second, in one write per
 * ping, and every nudge that arrived meanwhile waited for it: the sweep yields between chunks.
 */
const SESSIONS_PER_TURN = 256;

/**
 * Pings every session on an interval and closes the ones whose pong is late (a dead network
 * leaves a socket open for ever otherwise), and ends the ones whose token expired. One timer
 * for the whole hub, not one per session.
 */
export class KeepAlive {
  private timer: NodeJS.Timeout | null = null;
  /** The sweep in progress, if it has not reached the last session yet. */
  private sweeping: Iterator<Session> | null = null;

  constructor(private readonly options: KeepAliveOptions) {}

  start(): void {
    const { pingIntervalMs, pongTimeoutMs } = this.options;
    const tick = Math.max(
      10,
      Math.min(1000, Math.floor(Math.min(pingIntervalMs, pongTimeoutMs) / 2)),
    );
    this.timer = setInterval(() => this.check(), tick);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sweeping = null;
  }

  private check(): void {
    // A tick that finds the previous sweep still going lets it finish.
    if (this.sweeping) return;
    this.sweeping = this.options.registry.all();
    this.sweep();
  }

  private sweep(): void {
    const sessions = this.sweeping;
    if (!sessions) return;
    const now = this.options.now();
    for (let seen = 0; seen < SESSIONS_PER_TURN; seen++) {
      const next = sessions.next();
      if (next.done) {
        this.sweeping = null;
        return;
      }
      this.checkSession(next.value, now);
    }
    setImmediate(() => {
      if (this.sweeping === sessions) this.sweep();
    });
  }

  private checkSession(session: Session, now: number): void {
    const { pingIntervalMs, pongTimeoutMs } = this.options;
    const { socket } = session;
    if (!socket.isOpen()) return;
    const expiresAt = session.principal.expiresAt;
    if (expiresAt !== undefined && now >= expiresAt) {
      this.options.onExpired(session);
      return;
    }
    if (session.awaitingPong) {
      if (now - session.pingAt > pongTimeoutMs) {
        socket.close(CLOSE_CODES.pingTimeout, 'ping timeout');
        setTimeout(() => socket.terminate(), TERMINATE_AFTER_MS).unref();
      }
    } else if (now - session.pingAt >= pingIntervalMs) {
      session.awaitingPong = true;
      session.pingAt = now;
      socket.ping();
    }
  }
}
