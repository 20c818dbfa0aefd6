import type { FastifyRequest } from 'fastify';
import {
  ForbiddenError,
  RateLimitedError,
  ShuttingDownError,
  UnavailableError,
  type MiniPushError,
} from '../../errors.js';

export interface AdmissionSettings {
  /** Allowed `Origin` values; empty allows any. */
  readonly wsAllowedOrigins: readonly string[];
  /** Sessions this hub holds at most (after the open-file limit). */
  readonly maxSessionsPerHub: number;
  /** Concurrent connections per client IP; 0 means no limit. */
  readonly maxConnectionsPerIp: number;
}

export interface AdmissionState {
  /** False once the hub began shutting down. */
  isAccepting(): boolean;
  /** Sessions the hub holds now. */
  sessions(): number;
}

/**
 * Decides which session connections go ahead (WebSocket upgrades and SSE streams, one instance
 * for both), before any message: the origin, the hub's capacity and the per-IP limit. A
 * connection counts against both from its admission until it ends, so a burst of concurrent
 * connects cannot all pass the checks.
 */
export class UpgradeAdmission {
  /** Upgrades admitted but not yet sessions. */
  private connecting = 0;
  private readonly byIp = new Map<string, number>();
  private readonly pending = new WeakMap<object, () => void>();

  constructor(
    private readonly settings: AdmissionSettings,
    private readonly hub: AdmissionState,
  ) {}

  /** Why this upgrade is refused, or null when it may go ahead. */
  refusal(request: FastifyRequest): MiniPushError | null {
    const { settings } = this;
    if (!this.hub.isAccepting()) {
      return new ShuttingDownError('this hub is shutting down; connect to another');
    }
    const origin = request.headers.origin;
    if (
      settings.wsAllowedOrigins.length > 0 &&
      (origin === undefined || !settings.wsAllowedOrigins.includes(origin))
    ) {
      return new ForbiddenError(`origin ${origin ?? '(none)'} is not allowed`);
    }
    if (this.hub.sessions() + this.connecting >= settings.maxSessionsPerHub) {
      return new UnavailableError('this hub is full; try another or later');
    }
    if (
      settings.maxConnectionsPerIp > 0 &&
      (this.byIp.get(request.ip) ?? 0) >= settings.maxConnectionsPerIp
    ) {
      return new RateLimitedError(`too many connections from ${request.ip}`);
    }
    return null;
  }

  /**
   * Counts an admitted connection until `ends` closes: by default its TCP connection (an
   * upgraded one carries nothing else); an SSE stream passes its response, since the connection
   * may carry other requests after it.
   */
  admit(
    request: FastifyRequest,
    ends: { once(event: 'close', listener: () => void): unknown } = request.raw.socket,
  ): void {
    const ip = request.ip;
    this.byIp.set(ip, (this.byIp.get(ip) ?? 0) + 1);
    this.connecting++;
    let connecting = true;
    const settle = () => {
      if (connecting) this.connecting--;
      connecting = false;
    };
    this.pending.set(request.raw, settle);
    ends.once('close', () => {
      settle();
      const left = (this.byIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.byIp.delete(ip);
      else this.byIp.set(ip, left);
    });
  }

  /** The upgrade became a session (or was refused after all): it stops counting as connecting. */
  settled(request: FastifyRequest): void {
    this.pending.get(request.raw)?.();
    this.pending.delete(request.raw);
  }
}
