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
 * Pings every session on an interval and closes the ones whose pong is late (a dead network
 * leaves a socket open for ever otherwise), and ends the ones whose token expired. One timer
 * for the whole hub, not one per session.
 */
export class KeepAlive {
  private timer: NodeJS.Timeout | null = null;

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
  }

  private check(): void {
    const { registry, pingIntervalMs, pongTimeoutMs } = this.options;
    const now = this.options.now();
    for (const session of registry.all()) {
      const { socket } = session;
      if (!socket.isOpen()) continue;
      const expiresAt = session.principal.expiresAt;
      if (expiresAt !== undefined && now >= expiresAt) {
        this.options.onExpired(session);
        continue;
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
}
