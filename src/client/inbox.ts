import { ConnectionState } from './codes.js';
import { Emitter } from './emitter.js';
import type { FeedEvent, HeadState, InboxStateName, StatusFilter } from './protocol.js';

/** Why the client disconnected, and whether it will try again. */
export interface DisconnectInfo {
  /** A {@link DisconnectCode}: the server's close code, or one of the client's own below 1000. */
  readonly code: number;
  readonly reason: string;
  /** False when the client stopped for good (kickoff, forbidden, `disconnect()`). */
  readonly reconnect: boolean;
}

/** The per-event flags besides the payload: each is one of the user's state bitmaps. */
export type EventFlag = InboxStateName;

/**
 * Which events `list()` gives, as the server's `status` filter: `all` (the default of `list`),
 * `unarchived` (the inbox), `unread` and `unseen` (both leave archived events out), `archived`.
 */
export type FeedStatus = StatusFilter;

/** What `list()` returns. */
export interface ListFilter {
  /** Default `all`: every cached event. */
  readonly status?: FeedStatus;
}

/** Whether `event` is in the view `status` names; the server's filters, applied to one event. */
export function matchesStatus(event: FeedEvent, status: FeedStatus): boolean {
  switch (status) {
    case 'all':
      return true;
    case 'unarchived':
      return !event.archived;
    case 'unread':
      return !event.read && !event.archived;
    case 'unseen':
      return !event.seen && !event.archived;
    case 'archived':
      return event.archived;
    default: {
      const unknown: never = status;
      throw new TypeError(`unknown status ${String(unknown)}`);
    }
  }
}

/** What a change of one flag touched: `{ seqs, read }`, `{ seqs, seen }` or `{ seqs, archived }`. */
export type FlagChange<F extends EventFlag> = {
  /** Cached seqs whose flag changed, ascending. */
  readonly seqs: number[];
} & { readonly [K in F]: boolean };

/** What a read-state change touched. */
export type ReadChange = FlagChange<'read'>;
/** What a seen-state change touched. */
export type SeenChange = FlagChange<'seen'>;
/** What an archived-state change touched. */
export type ArchivedChange = FlagChange<'archived'>;

/** The server's counts, as the bell's badge and the inbox's tabs show them. */
export interface InboxCounts {
  /** Unread events, archived ones left out. */
  readonly unreadCount: number;
  /** Events never seen (the badge), archived ones left out. */
  readonly unseenCount: number;
  /** Archived events still stored. */
  readonly archivedCount: number;
}

/** The callbacks of a client, by name. */
export interface ClientEvents {
  /** A new event entered the cache, in ascending seq order (catch-up, nudge, refetch). */
  event: (event: FeedEvent) => void;
  /** Cached events changed read state, by this client or another session of the user. */
  read: (change: ReadChange) => void;
  /** Cached events changed seen state (seen by a mark, or read), here or in another session. */
  seen: (change: SeenChange) => void;
  /** Cached events were archived or unarchived, here or in another session. */
  archived: (change: ArchivedChange) => void;
  /** The unread count changed; it follows the server's count. */
  unread: (count: number) => void;
  /** The unseen count (the bell's badge) changed; it follows the server's count. */
  unseen: (count: number) => void;
  /** The unread, unseen or archived count changed. */
  counts: (counts: InboxCounts) => void;
  /** The server's head, floor, counts or read version changed. */
  head: (state: HeadState) => void;
  /** Events below `floorSeq` expired: the cache was dropped; the newest page follows as events. */
  reset: (state: { readonly floorSeq: number; readonly headSeq: number }) => void;
  /** The connection state changed. */
  state: (state: ConnectionState, previous: ConnectionState) => void;
  /** The socket closed; `reconnect` says whether the client tries again. */
  disconnect: (info: DisconnectInfo) => void;
  /** A background step failed (catch-up, token refresh); the client carries on. */
  error: (error: Error) => void;
}

/** Everything a tab needs to mirror another tab's inbox. */
export interface InboxSnapshot {
  readonly events: FeedEvent[];
  readonly lastSeq: number;
  readonly server: HeadState;
  readonly connection: ConnectionState;
}

const EMPTY: HeadState = {
  headSeq: 0,
  floorSeq: 0,
  unreadCount: 0,
  unseenCount: 0,
  archivedCount: 0,
  readVersion: 0,
};

/** Every flag, in the order they are reported. */
export const EVENT_FLAGS: readonly EventFlag[] = ['read', 'seen', 'archived'];
const FLAGS = EVENT_FLAGS;

function countsOf(state: InboxCounts): InboxCounts {
  const { unreadCount, unseenCount, archivedCount } = state;
  return { unreadCount, unseenCount, archivedCount };
}

function sameCounts(a: InboxCounts, b: InboxCounts): boolean {
  return (
    a.unreadCount === b.unreadCount &&
    a.unseenCount === b.unseenCount &&
    a.archivedCount === b.archivedCount
  );
}

interface Reader {
  readonly queue: FeedEvent[];
  wake: (() => void) | null;
  done: boolean;
}

/**
 * The local model of one user's feed: cached events keyed by seq, the server's counters, the
 * connection state, and the callbacks and iterators that report changes. A socket client writes
 * into it; a follower tab mirrors the leader's into its own.
 */
export class Inbox extends Emitter<ClientEvents> {
  private readonly cache = new Map<number, FeedEvent>();
  private readonly readers = new Set<Reader>();
  private server: HeadState = EMPTY;
  private connection: ConnectionState = ConnectionState.Disconnected;
  /** Highest seq the cache is complete up to; the next diff starts after it. */
  lastSeq = 0;

  constructor(private readonly maxCachedEvents: number) {
    super();
  }

  get state(): ConnectionState {
    return this.connection;
  }

  get head(): HeadState {
    return this.server;
  }

  /** Cached events, newest first; with a status, only those in that view. */
  list(filter: ListFilter = {}): FeedEvent[] {
    const status = filter.status ?? 'all';
    const events = [...this.cache.values()].sort((a, b) => b.seq - a.seq);
    return status === 'all' ? events : events.filter((e) => matchesStatus(e, status));
  }

  get(seq: number): FeedEvent | undefined {
    return this.cache.get(seq);
  }

  /** Adds events not seen before (ascending order is kept); known seqs only refresh flags. */
  addEvents(events: readonly FeedEvent[]): void {
    const fresh: FeedEvent[] = [];
    const flips = FLAGS.map(() => ({ on: [] as number[], off: [] as number[] }));
    for (const event of [...events].sort((a, b) => a.seq - b.seq)) {
      const known = this.cache.get(event.seq);
      if (known) {
        let changed = false;
        for (const [i, flag] of FLAGS.entries()) {
          if (known[flag] === event[flag]) continue;
          changed = true;
          (event[flag] ? flips[i]!.on : flips[i]!.off).push(event.seq);
        }
        if (changed) {
          const { read, seen, archived } = event;
          this.cache.set(event.seq, { ...known, read, seen, archived });
        }
        continue;
      }
      if (event.seq <= this.lastSeq) continue;
      const copy: FeedEvent = {
        seq: event.seq,
        createTime: event.createTime,
        body: event.body,
        read: event.read,
        seen: event.seen,
        archived: event.archived,
      };
      this.cache.set(copy.seq, copy);
      this.lastSeq = copy.seq;
      fresh.push(copy);
    }
    this.evict();
    for (const [i, flag] of FLAGS.entries()) {
      const flip = flips[i]!;
      if (flip.on.length > 0) this.emitFlag(flag, flip.on, true);
      if (flip.off.length > 0) this.emitFlag(flag, flip.off, false);
    }
    for (const event of fresh) {
      this.emit('event', event);
      for (const reader of this.readers) {
        reader.queue.push(event);
        reader.wake?.();
      }
    }
  }

  /** Sets the `read` flag of the cached events among `seqs` (reading one makes it seen too). */
  setRead(seqs: Iterable<number>, read: boolean): void {
    const list = [...seqs];
    this.setFlag('read', list, read);
    if (read) this.setFlag('seen', list, true);
  }

  /** Sets one flag of the cached events among `seqs`, and reports the ones that changed. */
  setFlag(flag: EventFlag, seqs: Iterable<number>, value: boolean): void {
    const changed: number[] = [];
    for (const seq of seqs) {
      const known = this.cache.get(seq);
      if (known && known[flag] !== value) {
        this.cache.set(seq, { ...known, [flag]: value });
        changed.push(seq);
      }
    }
    if (changed.length > 0)
      this.emitFlag(
        flag,
        changed.sort((a, b) => a - b),
        value,
      );
  }

  /** Makes `flag` of the cached events up to `upTo` true exactly when `seqs` holds them. */
  syncFlag(flag: EventFlag, seqs: ReadonlySet<number>, upTo: number): void {
    const on: number[] = [];
    const off: number[] = [];
    for (const event of this.cache.values()) {
      if (event.seq > upTo) continue;
      const has = seqs.has(event.seq);
      if (has !== event[flag]) (has ? on : off).push(event.seq);
    }
    this.setFlag(flag, on, true);
    this.setFlag(flag, off, false);
  }

  /**
   * Takes the server's counters when they are newer: heads and floors only grow, and the unread
   * count comes with the newest read version (the hub merges nudges the same way).
   */
  applyState(next: Partial<HeadState>): void {
    const prev = this.server;
    const readVersion = next.readVersion ?? prev.readVersion;
    const headSeq = Math.max(prev.headSeq, next.headSeq ?? 0);
    const takesCounts =
      readVersion > prev.readVersion ||
      (readVersion === prev.readVersion && (next.headSeq ?? 0) >= prev.headSeq);
    const merged: HeadState = {
      headSeq,
      floorSeq: Math.max(prev.floorSeq, next.floorSeq ?? 0),
      unreadCount: (takesCounts ? next.unreadCount : undefined) ?? prev.unreadCount,
      unseenCount: (takesCounts ? next.unseenCount : undefined) ?? prev.unseenCount,
      archivedCount: (takesCounts ? next.archivedCount : undefined) ?? prev.archivedCount,
      readVersion: Math.max(prev.readVersion, readVersion),
    };
    if (
      merged.headSeq === prev.headSeq &&
      merged.floorSeq === prev.floorSeq &&
      merged.unreadCount === prev.unreadCount &&
      merged.unseenCount === prev.unseenCount &&
      merged.archivedCount === prev.archivedCount &&
      merged.readVersion === prev.readVersion
    )
      return;
    this.server = merged;
    this.emit('head', merged);
    if (merged.unreadCount !== prev.unreadCount) this.emit('unread', merged.unreadCount);
    if (merged.unseenCount !== prev.unseenCount) this.emit('unseen', merged.unseenCount);
    if (!sameCounts(merged, prev)) this.emit('counts', countsOf(merged));
  }

  /**
   * Forgets the server's counters so the next state is taken as is: a server whose data was
   * replaced starts its versions again.
   */
  forgetState(): void {
    const { unreadCount, unseenCount, archivedCount } = this.server;
    this.server = { ...EMPTY, unreadCount, unseenCount, archivedCount };
  }

  /** Drops the cache after expiry; the caller refills it with the newest page. */
  reset(state: { floorSeq: number; headSeq: number }): void {
    this.cache.clear();
    this.lastSeq = Math.max(0, state.floorSeq - 1);
    this.emit('reset', { floorSeq: state.floorSeq, headSeq: state.headSeq });
  }

  setConnection(state: ConnectionState): void {
    const previous = this.connection;
    if (previous === state) return;
    this.connection = state;
    this.emit('state', state, previous);
  }

  snapshot(): InboxSnapshot {
    return {
      events: this.list().reverse(),
      lastSeq: this.lastSeq,
      server: this.server,
      connection: this.connection,
    };
  }

  /** New events as they arrive, until the client stops for good or the loop breaks. */
  iterate(): AsyncIterableIterator<FeedEvent> {
    const reader: Reader = { queue: [], wake: null, done: false };
    this.readers.add(reader);
    const finish = (): IteratorReturnResult<undefined> => {
      reader.done = true;
      reader.queue.length = 0;
      this.readers.delete(reader);
      reader.wake?.();
      return { done: true, value: undefined };
    };
    const iterator: AsyncIterableIterator<FeedEvent> = {
      next: async () => {
        for (;;) {
          const event = reader.queue.shift();
          if (event) return { done: false, value: event };
          if (reader.done) return finish();
          await new Promise<void>((resolve) => {
            reader.wake = resolve;
          });
          reader.wake = null;
        }
      },
      return: async () => finish(),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }

  /** Ends every iterator once it has handed out what is queued. */
  endIterators(): void {
    for (const reader of this.readers) {
      reader.done = true;
      reader.wake?.();
    }
    // Events of a later connect() belong to iterators made after it.
    this.readers.clear();
  }

  private emitFlag(flag: EventFlag, seqs: number[], value: boolean): void {
    switch (flag) {
      case 'read':
        this.emit('read', { seqs, read: value });
        return;
      case 'seen':
        this.emit('seen', { seqs, seen: value });
        return;
      case 'archived':
        this.emit('archived', { seqs, archived: value });
        return;
      default: {
        const unknown: never = flag;
        throw new TypeError(`unknown flag ${String(unknown)}`);
      }
    }
  }

  private evict(): void {
    if (this.cache.size <= this.maxCachedEvents) return;
    const seqs = [...this.cache.keys()].sort((a, b) => a - b);
    for (const seq of seqs.slice(0, seqs.length - this.maxCachedEvents)) this.cache.delete(seq);
  }
}

/** What both clients (one socket, or shared between tabs) show of their inbox. */
export abstract class InboxView {
  protected abstract readonly inbox: Inbox;

  get state(): ConnectionState {
    return this.inbox.state;
  }

  get unreadCount(): number {
    return this.inbox.head.unreadCount;
  }

  /** Events never seen, as the server counts them: the bell's badge. */
  get unseenCount(): number {
    return this.inbox.head.unseenCount;
  }

  /** Archived events, as the server counts them. */
  get archivedCount(): number {
    return this.inbox.head.archivedCount;
  }

  /** The three counts at once. */
  get counts(): InboxCounts {
    return countsOf(this.inbox.head);
  }

  get head(): HeadState {
    return this.inbox.head;
  }

  /** The cached events, newest first; `{ status }` keeps those in one view (default `all`). */
  list(filter?: ListFilter): FeedEvent[] {
    return this.inbox.list(filter);
  }

  events(): AsyncIterableIterator<FeedEvent> {
    return this.inbox.iterate();
  }
}
