/**
 * Records hubs exchange about sessions, in one log ordered per uid. Every hub applies the same
 * rule to the same order, so all agree on which session is the oldest without asking anyone.
 */
export type SessionRecord =
  | {
      readonly type: 'open';
      readonly uid: number;
      readonly sessionId: string;
      readonly hubId: string;
    }
  | {
      readonly type: 'close';
      readonly uid: number;
      readonly sessionId: string;
      readonly hubId: string;
    }
  | { readonly type: 'heartbeat'; readonly hubId: string }
  | { readonly type: 'leave'; readonly hubId: string };

interface Entry {
  readonly sessionId: string;
  readonly hubId: string;
}

/**
 * The cluster-wide session quota as one hub sees it. A hub tracks a uid from the moment its own
 * first session of that uid appears in the log; every later open of that uid, on any hub, is
 * appended. A local session with `quota` or more newer live sessions behind it is kicked. Older
 * sessions elsewhere need no tracking: their own hubs kick them first.
 */
export class SessionQuota {
  private readonly tracked = new Map<number, Entry[]>();
  private readonly local = new Set<string>();
  private readonly lastSeen = new Map<string, number>();
  private readonly dead = new Set<string>();

  constructor(
    private readonly hubId: string,
    private readonly quota: number,
    private readonly hubTimeoutMs: number,
  ) {}

  /** A session accepted here; its open record is on its way through the log. */
  addLocal(sessionId: string): void {
    this.local.add(sessionId);
  }

  /** A local session ended; stops tracking its uid when it was the last one here. */
  removeLocal(uid: number, sessionId: string): void {
    this.local.delete(sessionId);
    const list = this.tracked.get(uid);
    if (!list) return;
    const rest = list.filter((e) => e.sessionId !== sessionId);
    if (rest.some((e) => e.hubId === this.hubId)) this.tracked.set(uid, rest);
    else this.tracked.delete(uid);
  }

  /** Applies one record in log order; returns the local sessions to kick. */
  apply(record: SessionRecord, now: number): string[] {
    if (record.hubId !== this.hubId) {
      this.lastSeen.set(record.hubId, now);
      this.dead.delete(record.hubId);
    }
    switch (record.type) {
      case 'heartbeat':
        return [];
      case 'leave':
        this.forgetHub(record.hubId);
        return [];
      case 'close': {
        const list = this.tracked.get(record.uid);
        if (list) {
          const index = list.findIndex((e) => e.sessionId === record.sessionId);
          if (index >= 0) list.splice(index, 1);
        }
        return [];
      }
      case 'open': {
        let list = this.tracked.get(record.uid);
        if (!list) {
          // Start tracking only at one of our own sessions that is still alive here.
          if (record.hubId !== this.hubId || !this.local.has(record.sessionId)) return [];
          list = [];
          this.tracked.set(record.uid, list);
        }
        if (list.some((e) => e.sessionId === record.sessionId)) return [];
        list.push({ sessionId: record.sessionId, hubId: record.hubId });
        return this.overQuota(record.uid, list);
      }
      default: {
        const unreachable: never = record;
        throw new Error(`unknown session record ${JSON.stringify(unreachable)}`);
      }
    }
  }

  private overQuota(uid: number, list: Entry[]): string[] {
    const kicked: string[] = [];
    for (let i = 0; i < list.length; i++) {
      const entry = list[i]!;
      if (entry.hubId !== this.hubId) continue;
      const newer = list.length - 1 - i;
      if (newer >= this.quota) kicked.push(entry.sessionId);
    }
    if (kicked.length > 0) {
      const rest = list.filter((e) => !kicked.includes(e.sessionId));
      if (rest.some((e) => e.hubId === this.hubId)) this.tracked.set(uid, rest);
      else this.tracked.delete(uid);
      for (const id of kicked) this.local.delete(id);
    }
    return kicked;
  }

  /** Forgets sessions of hubs not heard from within the timeout; returns the hubs dropped. */
  sweep(now: number): string[] {
    const dropped: string[] = [];
    for (const [hubId, seen] of this.lastSeen) {
      if (now - seen > this.hubTimeoutMs && !this.dead.has(hubId)) {
        this.dead.add(hubId);
        this.forgetHub(hubId);
        dropped.push(hubId);
      }
    }
    return dropped;
  }

  private forgetHub(hubId: string): void {
    for (const [uid, list] of this.tracked) {
      const rest = list.filter((e) => e.hubId !== hubId);
      if (rest.length !== list.length) this.tracked.set(uid, rest);
    }
  }

  /** Live sessions of a uid this hub knows of (for tests and metrics). */
  knownSessions(uid: number): number {
    return this.tracked.get(uid)?.length ?? 0;
  }
}
