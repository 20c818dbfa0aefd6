import type { Subscription } from '../log/log.js';
import type { Logger } from '../logger.js';
import type { SessionBus } from './session-bus.js';
import { SessionQuota, type SessionRecord } from './session-quota.js';

export interface QuotaExchangeOptions {
  readonly hubId: string;
  readonly bus: SessionBus;
  /** Live sessions per user across all hubs. */
  readonly sessionQuota: number;
  /** How often this hub says it is alive, in ms. */
  readonly heartbeatMs: number;
  /** A hub silent this long has its sessions forgotten, in ms. */
  readonly hubTimeoutMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  /** A local session is over the quota: the oldest of its user's, to be kicked. */
  readonly onOverQuota: (sessionId: string) => void;
}

/**
 * Keeps the cluster-wide session quota: announces this hub's session opens and closes and its
 * heartbeats on the session bus, and applies every hub's announcements, in the bus's order, to
 * the {@link SessionQuota}.
 */
export class QuotaExchange {
  private readonly quota: SessionQuota;
  private subscription: Subscription | null = null;
  private heartbeat: NodeJS.Timeout | null = null;

  constructor(private readonly options: QuotaExchangeOptions) {
    this.quota = new SessionQuota(options.hubId, options.sessionQuota, options.hubTimeoutMs);
  }

  async start(): Promise<void> {
    const { hubId, now } = this.options;
    this.subscription = await this.options.bus.subscribe((records) => {
      const at = now();
      for (const record of records) {
        for (const sessionId of this.quota.apply(record, at)) this.options.onOverQuota(sessionId);
      }
    });
    this.heartbeat = setInterval(() => {
      this.announce({ type: 'heartbeat', hubId });
      for (const hub of this.quota.sweep(now()))
        this.options.logger.warn({ hub }, 'hub went silent; its sessions stop counting');
    }, this.options.heartbeatMs);
    this.heartbeat.unref();
    this.announce({ type: 'heartbeat', hubId });
  }

  /** Hearing the other hubs (for readiness). */
  isSubscribed(): boolean {
    return this.subscription !== null && (this.subscription.isActive?.() ?? true);
  }

  opened(uid: number, sessionId: string): void {
    this.quota.addLocal(sessionId);
    this.announce({ type: 'open', uid, sessionId, hubId: this.options.hubId });
  }

  /** A local session ended; `announce` false while the whole hub leaves. */
  closed(uid: number, sessionId: string, announce: boolean): void {
    this.quota.removeLocal(uid, sessionId);
    if (announce) this.announce({ type: 'close', uid, sessionId, hubId: this.options.hubId });
  }

  /** Tells the other hubs that none of this hub's sessions count any more, and stops. */
  async leave(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    await this.options.bus
      .publish({ type: 'leave', hubId: this.options.hubId })
      .catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.subscription?.close();
  }

  private announce(record: SessionRecord): void {
    this.options.bus.publish(record).catch((err: unknown) => {
      this.options.logger.warn({ err, record: record.type }, 'could not publish a session record');
    });
  }
}
