import type { Knex } from 'knex';
import type { FeedPosition, HeadChange } from '../domain/head-state.js';
import { inboxCounts, sameCounts, type InboxBitmaps } from '../domain/inbox-state.js';
import type { ChangeFeed, Subscription } from '../log/log.js';
import type { Logger } from '../logger.js';
import { typed } from '../store/database.js';
import type { FeedRow } from './feed-event.js';
import { readUserState, type StoredUserState } from './user-state.js';
import {
  readPage,
  readRows,
  storeView,
  StoreUserViews,
  type SeqOrder,
  type UserView,
  type UserViews,
} from './user-view.js';

export interface ReadCacheOptions {
  readonly db: Knex;
  /** The heads stream, as the projectors announce changes and positions on it. */
  readonly feed: ChangeFeed;
  /** The commands log's name: the projectors' offsets are kept under it. */
  readonly topic: string;
  /** Memory budget: users are evicted, least recently read first, beyond it. */
  readonly maxBytes: number;
  /**
   * How long a query waits for the heads stream to reach what the store has committed before
   * it reads the store instead.
   */
  readonly waitMs: number;
  /**
   * When the store's only projector runs in this process and announces in it (the embedded
   * default), what it has committed per partition: fences then need no query once the epoch
   * is known.
   */
  readonly localCommits?: () => ReadonlyMap<number, number>;
  /** Events kept per user, newest reads first. */
  readonly maxEventsPerUser?: number;
  readonly logger: Logger;
}

/** What the cache did, since it started: counters and the current size. */
export interface ReadCacheStats {
  /** Queries answered from memory. */
  readonly hits: number;
  /** Queries that found no state and read it from the store (and kept it when they could). */
  readonly misses: number;
  /** Queries that read the store because the heads stream was behind or unavailable. */
  readonly fallbacks: number;
  readonly evictions: number;
  /** Fence queries run against the store (one serves every query waiting for it). */
  readonly fences: number;
  /** Pages of events served from memory, and read from the store. */
  readonly pageHits: number;
  readonly pageMisses: number;
  readonly entries: number;
  readonly bytes: number;
}

/** One user in memory: the state (null once a change made it unknown) and events by seq. */
interface Entry {
  partition: number;
  state: StoredUserState | null;
  /** Events below it expired: never kept, never served. */
  floorSeq: number;
  readonly events: Map<number, FeedRow>;
  bytes: number;
}

/** How far the store has committed, per commands partition, in which read model. */
interface Fence {
  readonly epoch: string;
  readonly committed: ReadonlyMap<number, number>;
  readonly notified: ReadonlyMap<number, number>;
  /** The cache's generation when the fence was asked for. */
  readonly generation: number;
}

interface Waiter {
  readonly partition: number;
  readonly offset: number;
  readonly done: (caughtUp: boolean) => void;
}

const ENTRY_BYTES = 160;
const EVENT_BYTES = 96;

function bitmapBytes(bitmaps: InboxBitmaps): number {
  return (
    bitmaps.read.getSerializationSizeInBytes('portable') +
    bitmaps.seen.getSerializationSizeInBytes('portable') +
    bitmaps.archived.getSerializationSizeInBytes('portable')
  );
}

function eventBytes(row: FeedRow): number {
  return EVENT_BYTES + row.body.length * 2;
}

/**
 * Users' feeds in memory, exactly as the store has them when a query arrives (see
 * docs/architecture.md, "Read cache"):
 *
 * - events are immutable once delivered, so any page read once can be served again, above the
 *   floor;
 * - a user's state changes only through the projector, which announces each change on the heads
 *   stream and then a position: "every commit of commands partition p below offset o is
 *   announced";
 * - a query is served from memory only if, after it arrived, the store's committed offset of the
 *   user's partition (the fence, one small query shared by every query waiting) is covered by the
 *   positions heard, in the same read model epoch; otherwise it reads the store.
 */
export class ReadCache implements UserViews {
  private readonly store: StoreUserViews;
  private readonly entries = new Map<number, Entry>();
  /** Loads in flight per user; a change heard meanwhile makes their result unsafe to keep. */
  private readonly loads = new Map<number, { count: number; dirty: boolean }>();
  /**
   * Positions heard since the subscription started, per epoch and partition: each covers the
   * changes before it, whether heard (published since) or already in any state read since.
   */
  private readonly heardByEpoch = new Map<string, Map<number, number>>();
  private waiters: Waiter[] = [];
  /** The read model whose positions count; null until the first fence after (re)subscribing. */
  private epoch: string | null = null;
  /** Grows on every flush and start of an epoch: older loads and fences do not count. */
  private generation = 0;
  private subscription: Subscription | null = null;
  private fenceInFlight: Promise<Fence> | null = null;
  private fenceNext: Promise<Fence> | null = null;
  private bytes = 0;
  private counts = {
    hits: 0,
    misses: 0,
    fallbacks: 0,
    evictions: 0,
    fences: 0,
    pageHits: 0,
    pageMisses: 0,
  };

  constructor(private readonly options: ReadCacheOptions) {
    this.store = new StoreUserViews(options.db);
  }

  async start(): Promise<void> {
    this.subscription = await this.options.feed.subscribe(
      (changes, positions) => this.onHeads(changes, positions),
      {
        onGap: () => {
          this.options.logger.warn(
            { component: 'read cache' },
            'the heads stream may have lost records: cache flushed',
          );
          this.flush(null);
        },
      },
    );
  }

  async stop(): Promise<void> {
    const subscription = this.subscription;
    this.subscription = null;
    this.flush(null);
    await subscription?.close();
  }

  stats(): ReadCacheStats {
    return { ...this.counts, entries: this.entries.size, bytes: this.bytes };
  }

  async open(uid: number): Promise<UserView> {
    const entry = this.entries.get(uid);
    if (entry?.state) {
      if (!(await this.caughtUp(entry.partition))) {
        this.counts.fallbacks++;
        return this.store.open(uid);
      }
      // Whatever is kept now is at least as new as the store was when the query arrived.
      const current = this.entries.get(uid);
      if (current?.state) {
        this.counts.hits++;
        this.entries.delete(uid);
        this.entries.set(uid, current);
        return this.view(uid, current, current.state);
      }
    }
    if (this.epoch === null && this.isSubscribed()) {
      // The first query after starting (or a gap) learns the read model and what was announced.
      await this.nextFence().catch(() => undefined);
    }
    return this.load(uid);
  }

  private async load(uid: number): Promise<UserView> {
    this.counts.misses++;
    const generation = this.generation;
    const keepable = this.epoch !== null && this.isSubscribed();
    let load = this.loads.get(uid);
    if (!load) this.loads.set(uid, (load = { count: 0, dirty: false }));
    load.count++;
    let state: StoredUserState;
    try {
      state = await readUserState(this.options.db, uid);
    } finally {
      if (--load.count === 0) this.loads.delete(uid);
    }
    // Kept only if no change of the user was heard during the read and nothing was flushed:
    // the state then stays exact by applying what the heads stream says from now on.
    if (!keepable || load.dirty || generation !== this.generation || state.partition < 0) {
      return this.storeView(uid, state);
    }
    let entry = this.entries.get(uid);
    if (entry?.state) return this.view(uid, entry, entry.state);
    if (!entry) {
      entry = { partition: state.partition, state: null, floorSeq: 0, events: new Map(), bytes: 0 };
      this.entries.set(uid, entry);
    }
    entry.partition = state.partition;
    this.setState(entry, state);
    this.evict();
    return this.view(uid, entry, state);
  }

  private storeView(uid: number, state: StoredUserState): UserView {
    return storeView(this.options.db, uid, state);
  }

  /** A view of a kept user: pages from memory when all their events are there. */
  private view(uid: number, entry: Entry, state: StoredUserState): UserView {
    const generation = this.generation;
    return {
      state,
      page: async (lo: number, hi: number, order: SeqOrder, limit: number) => {
        const count = Math.min(limit, hi - lo + 1);
        const rows: FeedRow[] = [];
        for (let i = 0; i < count; i++) {
          const row = entry.events.get(order === 'asc' ? lo + i : hi - i);
          if (!row) break;
          rows.push(row);
        }
        if (rows.length === count) {
          this.counts.pageHits++;
          return rows;
        }
        this.counts.pageMisses++;
        const read = await readPage(this.options.db, uid, state.partition, {
          lo,
          hi,
          order,
          limit,
        });
        if (generation === this.generation && this.entries.get(uid) === entry) {
          this.keepEvents(entry, read);
        }
        return read;
      },
      rows: async (seqs: readonly number[]) => {
        const kept = seqs.flatMap((seq) => entry.events.get(seq) ?? []);
        if (kept.length === seqs.length) {
          this.counts.pageHits++;
          return kept;
        }
        this.counts.pageMisses++;
        const read = await readRows(this.options.db, uid, state.partition, seqs);
        if (generation === this.generation && this.entries.get(uid) === entry) {
          this.keepEvents(entry, read);
        }
        return read;
      },
    };
  }

  private keepEvents(entry: Entry, rows: readonly FeedRow[]): void {
    const max = this.options.maxEventsPerUser ?? 1000;
    for (const row of rows) {
      if (row.seq < entry.floorSeq || entry.events.has(row.seq)) continue;
      entry.events.set(row.seq, row);
      this.resize(entry, eventBytes(row));
    }
    for (const [seq, row] of entry.events) {
      if (entry.events.size <= max) break;
      entry.events.delete(seq);
      this.resize(entry, -eventBytes(row));
    }
    this.evict();
  }

  private setState(entry: Entry, state: StoredUserState | null): void {
    const before = entry.state ? bitmapBytes(entry.state.bitmaps) : 0;
    const after = state ? bitmapBytes(state.bitmaps) : 0;
    if (entry.bytes === 0) this.resize(entry, ENTRY_BYTES);
    entry.state = state;
    if (state && state.floorSeq > entry.floorSeq) this.raiseFloor(entry, state.floorSeq);
    this.resize(entry, after - before);
  }

  private raiseFloor(entry: Entry, floorSeq: number): void {
    entry.floorSeq = floorSeq;
    for (const [seq, row] of entry.events) {
      if (seq >= floorSeq) continue;
      entry.events.delete(seq);
      this.resize(entry, -eventBytes(row));
    }
  }

  private resize(entry: Entry, delta: number): void {
    entry.bytes += delta;
    this.bytes += delta;
  }

  private evict(): void {
    for (const [uid, entry] of this.entries) {
      if (this.bytes <= this.options.maxBytes) return;
      this.entries.delete(uid);
      this.bytes -= entry.bytes;
      this.counts.evictions++;
    }
  }

  private isSubscribed(): boolean {
    return this.subscription !== null && (this.subscription.isActive?.() ?? true);
  }

  /** What was heard of the current epoch's positions. */
  private heard(partition: number): number {
    return (
      (this.epoch === null ? undefined : this.heardByEpoch.get(this.epoch)?.get(partition)) ?? 0
    );
  }

  /**
   * Forgets every user; `epoch` starts a new read model (null: none yet). Positions stay unless
   * the subscription may have missed records.
   */
  private flush(epoch: string | null, forgetPositions = epoch === null): void {
    this.generation++;
    this.entries.clear();
    this.bytes = 0;
    if (forgetPositions) this.heardByEpoch.clear();
    this.epoch = epoch;
    for (const load of this.loads.values()) load.dirty = true;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.done(false);
  }

  private onHeads(changes: readonly HeadChange[], positions: readonly FeedPosition[]): void {
    for (const change of changes) this.apply(change);
    let moved = false;
    for (const position of positions) {
      let heard = this.heardByEpoch.get(position.epoch);
      if (!heard) {
        // Two epochs at most: the current one and the one a rebuild is making.
        for (const epoch of this.heardByEpoch.keys()) {
          if (this.heardByEpoch.size < 2) break;
          if (epoch !== this.epoch) this.heardByEpoch.delete(epoch);
        }
        this.heardByEpoch.set(position.epoch, (heard = new Map<number, number>()));
      }
      if (position.offset > (heard.get(position.partition) ?? 0)) {
        heard.set(position.partition, position.offset);
        if (position.epoch === this.epoch) moved = true;
      }
    }
    if (moved && this.waiters.length > 0) {
      this.waiters = this.waiters.filter((waiter) => {
        if (this.heard(waiter.partition) < waiter.offset) return true;
        waiter.done(true);
        return false;
      });
    }
  }

  /**
   * A change of one user, heard after its commit: heads and floors only grow; a new read version
   * means bitmaps the change does not carry, so the state is read again when next asked.
   */
  private apply(change: HeadChange): void {
    const load = this.loads.get(change.uid);
    if (load) load.dirty = true;
    const entry = this.entries.get(change.uid);
    if (!entry) return;
    if (change.floorSeq > entry.floorSeq) this.raiseFloor(entry, change.floorSeq);
    const state = entry.state;
    if (!state || change.readVersion < state.readVersion) return;
    if (change.readVersion > state.readVersion) {
      this.setState(entry, null);
      return;
    }
    const headSeq = Math.max(state.headSeq, change.headSeq);
    const floorSeq = Math.max(state.floorSeq, change.floorSeq);
    const next =
      headSeq === state.headSeq && floorSeq === state.floorSeq
        ? state
        : { ...state, headSeq, floorSeq };
    // The same states must give the same counts; if not, trust the store.
    const exact =
      next.headSeq !== change.headSeq ||
      next.floorSeq !== change.floorSeq ||
      sameCounts(inboxCounts(next.bitmaps, next.floorSeq, next.headSeq), change);
    if (exact) entry.state = next;
    else this.setState(entry, null);
  }

  /** True once the heads heard cover what the store had committed for `partition` on arrival. */
  private async caughtUp(partition: number): Promise<boolean> {
    if (!this.isSubscribed()) return false;
    let fence: Fence;
    try {
      fence = this.localFence() ?? (await this.nextFence());
    } catch (err) {
      this.options.logger.debug({ err, component: 'read cache' }, 'fence failed');
      return false;
    }
    if (fence.epoch !== this.epoch || fence.generation !== this.generation) return false;
    const offset = fence.committed.get(partition) ?? 0;
    if (this.heard(partition) >= offset) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, this.options.waitMs);
      const waiter: Waiter = {
        partition,
        offset,
        done: (caughtUp) => {
          clearTimeout(timer);
          resolve(caughtUp);
        },
      };
      this.waiters.push(waiter);
    });
  }

  /** With this process's own projector, what it committed is known without asking the store. */
  private localFence(): Fence | null {
    const local = this.options.localCommits;
    if (!local || this.epoch === null) return null;
    return {
      epoch: this.epoch,
      committed: local(),
      notified: new Map(),
      generation: this.generation,
    };
  }

  /** A fence asked for after now: the one in flight started too early, so the next one. */
  private nextFence(): Promise<Fence> {
    if (!this.fenceInFlight) return (this.fenceInFlight = this.runFence());
    this.fenceNext ??= this.fenceInFlight.then(
      () => this.promoteNext(),
      () => this.promoteNext(),
    );
    return this.fenceNext;
  }

  private promoteNext(): Promise<Fence> {
    this.fenceNext = null;
    return (this.fenceInFlight = this.runFence());
  }

  private async runFence(): Promise<Fence> {
    const generation = this.generation;
    this.counts.fences++;
    try {
      const rows = await typed<
        {
          epoch: string;
          log_partition: number | null;
          next_offset: number | string | null;
          notified_offset: number | string | null;
        }[]
      >(
        this.options
          .db('minipush_meta as m')
          .leftJoin('projector_offsets as p', (on) => {
            void on.onVal('p.topic', '=', this.options.topic);
          })
          .where('m.name', 'epoch')
          .select('m.value as epoch', 'p.log_partition', 'p.next_offset', 'p.notified_offset'),
      );
      if (rows.length === 0) throw new Error('minipush_meta holds no epoch: run minipush migrate');
      const committed = new Map<number, number>();
      const notified = new Map<number, number>();
      for (const row of rows) {
        if (row.log_partition === null) continue;
        committed.set(row.log_partition, Number(row.next_offset));
        notified.set(row.log_partition, Number(row.notified_offset));
      }
      const fence: Fence = { epoch: rows[0]!.epoch, committed, notified, generation };
      return this.adopt(fence);
    } finally {
      if (this.fenceNext === null) this.fenceInFlight = null;
    }
  }

  /**
   * A fence naming another read model than the one kept (or the first one) starts over: every
   * change committed below the offsets notified then was announced before the fence was read,
   * so a user read from the store after it is exact once later changes are applied.
   */
  private adopt(fence: Fence): Fence {
    if (fence.epoch === this.epoch || fence.generation !== this.generation) return fence;
    if (!this.isSubscribed()) return fence;
    if (this.epoch !== null) {
      this.options.logger.info(
        { component: 'read cache', epoch: fence.epoch },
        'the read model changed (rebuild or new database): cache flushed',
      );
    }
    this.flush(fence.epoch, false);
    let heard = this.heardByEpoch.get(fence.epoch);
    if (!heard) this.heardByEpoch.set(fence.epoch, (heard = new Map<number, number>()));
    for (const [partition, offset] of fence.notified) {
      if (offset > (heard.get(partition) ?? 0)) heard.set(partition, offset);
    }
    return { ...fence, generation: this.generation };
  }
}
