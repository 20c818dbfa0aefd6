import { MiniPushClient, MiniPushClientError, type InboxClient } from './client.js';
import type { MiniPushClientOptions } from './client.js';
import { ClientErrorCode, ConnectionState } from './codes.js';
import { Emitter } from './emitter.js';
import {
  Inbox,
  InboxView,
  type ClientEvents,
  type DisconnectInfo,
  type EventFlag,
  type InboxSnapshot,
} from './inbox.js';
import type { FeedEvent, HeadState } from './protocol.js';
import {
  electLeader,
  randomId,
  type BroadcastChannelConstructor,
  type BroadcastChannelLike,
  type Election,
  type LockManagerLike,
} from './tab-leader.js';
import { readClaims } from './token.js';

/** Whether this tab holds the socket or mirrors the tab that does. */
export type TabRole = 'leader' | 'follower';

/** Options of {@link TabClient}: those of {@link MiniPushClient}, and how tabs find each other. */
export interface TabClientOptions extends MiniPushClientOptions {
  /**
   * Tabs with the same scope share one socket. Default: the URL and the token's `sub`; required
   * when there is only `getToken()`, so that tabs of different users never share.
   */
  readonly scope?: string;
  /** Web Locks for the election. Default `navigator.locks`; null elects over the channel. */
  readonly locks?: LockManagerLike | null;
  /** The BroadcastChannel constructor. Default `globalThis.BroadcastChannel`. */
  readonly BroadcastChannel?: BroadcastChannelConstructor;
  /** Heartbeat of the election without Web Locks, in ms. Default 1000. */
  readonly leaderHeartbeatMs?: number;
}

/** Callbacks of a tab client: those of a client, and role changes. */
export interface TabClientEvents extends ClientEvents {
  /** This tab became the leader (holds the socket) or a follower. */
  role: (role: TabRole) => void;
}

type Method =
  'markRead' | 'markAllRead' | 'markUnread' | 'markSeen' | 'markAllSeen' | 'archive' | 'unarchive';

type TabMessage =
  | { readonly t: 'hello'; readonly from: string }
  | { readonly t: 'leader'; readonly from: string; readonly snapshot: InboxSnapshot }
  | {
      readonly t: 'snapshot';
      readonly from: string;
      readonly to: string;
      readonly snapshot: InboxSnapshot;
    }
  | { readonly t: 'event'; readonly from: string; readonly event: FeedEvent }
  | {
      readonly t: 'flag';
      readonly from: string;
      readonly flag: EventFlag;
      readonly seqs: number[];
      readonly value: boolean;
    }
  | { readonly t: 'head'; readonly from: string; readonly state: HeadState }
  | {
      readonly t: 'reset';
      readonly from: string;
      readonly state: { floorSeq: number; headSeq: number };
    }
  | { readonly t: 'state'; readonly from: string; readonly state: ConnectionState }
  | { readonly t: 'disconnect'; readonly from: string; readonly info: DisconnectInfo }
  | {
      readonly t: 'call';
      readonly from: string;
      readonly id: string;
      readonly method: Method;
      readonly seqs: number[];
    }
  | {
      readonly t: 'result';
      readonly from: string;
      readonly to: string;
      readonly id: string;
      readonly value?: { changed: number };
      readonly error?: { code: string; message: string };
    };

interface Call {
  readonly method: Method;
  readonly seqs: number[];
  readonly resolve: (value: { changed: number }) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

interface PageEvents {
  addEventListener?(type: string, listener: (event: { persisted?: boolean }) => void): void;
  removeEventListener?(type: string, listener: (event: { persisted?: boolean }) => void): void;
}

/**
 * One socket per browser, not per tab: the tabs of one origin and scope elect a leader that
 * holds a {@link MiniPushClient} and shares its events, heads and flags over a
 * BroadcastChannel; the others mirror it and forward their marks to it. When the leader tab
 * closes, another takes over and catches up from the last seq it mirrored.
 */
export class TabClient extends InboxView implements InboxClient {
  private readonly id = randomId();
  protected readonly inbox: Inbox;
  private readonly roles = new Emitter<{ role: (role: TabRole) => void }>();
  private readonly scope: string;
  private readonly calls = new Map<string, Call>();
  private readonly timeoutMs: number;
  private channel: BroadcastChannelLike | null = null;
  private election: Election | null = null;
  private client: MiniPushClient | null = null;
  private forwarding: Array<() => void> = [];
  private currentRole: TabRole = 'follower';
  private leaderId: string | null = null;
  /**
   * Set once a leader's snapshot arrived. Broadcasts before it are ignored: the snapshot, sent
   * after them, already holds what they carry, and an event taken first would hide older ones.
   */
  private mirrored = false;
  private readonly onPageHide = (): void => this.disconnect();
  private readonly onPageShow = (event: { persisted?: boolean }): void => {
    if (event.persisted === true) this.connect();
  };

  constructor(private readonly options: TabClientOptions) {
    super();
    const sub = options.token === undefined ? undefined : readClaims(options.token).sub;
    const scope = options.scope ?? (sub === undefined ? undefined : `${options.url}#${sub}`);
    if (scope === undefined) {
      throw new TypeError('TabClient needs a scope (e.g. the uid) when the token has no sub');
    }
    this.scope = scope;
    this.inbox = new Inbox(options.maxCachedEvents ?? 1000);
    this.timeoutMs = options.requestTimeoutMs ?? 10_000;
  }

  get role(): TabRole {
    return this.currentRole;
  }

  /** How the tabs elect their leader: `web-locks`, `broadcast-channel`, or null before connect. */
  get electionMethod(): Election['method'] | null {
    return this.election?.method ?? null;
  }

  on<K extends keyof TabClientEvents>(name: K, listener: TabClientEvents[K]): () => void {
    if (name === 'role') return this.roles.on('role', listener as TabClientEvents['role']);
    return this.inbox.on(name, listener as ClientEvents[keyof ClientEvents]);
  }

  markRead(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.call('markRead', [...seqs]);
  }

  markAllRead(): Promise<{ changed: number }> {
    return this.call('markAllRead', []);
  }

  markUnread(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.call('markUnread', [...seqs]);
  }

  markSeen(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.call('markSeen', [...seqs]);
  }

  markAllSeen(): Promise<{ changed: number }> {
    return this.call('markAllSeen', []);
  }

  archive(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.call('archive', [...seqs]);
  }

  unarchive(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.call('unarchive', [...seqs]);
  }

  /** Joins the tabs: leads (and connects) or follows the leader. */
  connect(): void {
    if (this.channel) return;
    const Channel =
      this.options.BroadcastChannel ??
      (globalThis as { BroadcastChannel?: BroadcastChannelConstructor }).BroadcastChannel;
    if (Channel === undefined) {
      throw new TypeError('no BroadcastChannel here: use MiniPushClient, one socket per context');
    }
    const channel = new Channel(`minipush:${this.scope}`) as BroadcastChannelLike;
    this.channel = channel;
    channel.onmessage = (event) => this.onTabMessage(event.data as TabMessage);
    const locks =
      this.options.locks !== undefined
        ? this.options.locks
        : ((globalThis as { navigator?: { locks?: LockManagerLike } }).navigator?.locks ?? null);
    this.election = electLeader({
      name: this.scope,
      locks,
      BroadcastChannel: Channel,
      heartbeatMs: this.options.leaderHeartbeatMs ?? 1000,
      onElected: () => this.lead(),
      onDeposed: () => this.follow(),
    });
    this.post({ t: 'hello', from: this.id });
    const page = globalThis as PageEvents;
    page.addEventListener?.('pagehide', this.onPageHide);
    page.addEventListener?.('pageshow', this.onPageShow);
  }

  /** Leaves the tabs: a leader hands the socket over to another tab; iterators end. */
  disconnect(): void {
    if (!this.channel) return;
    const page = globalThis as PageEvents;
    page.removeEventListener?.('pagehide', this.onPageHide);
    page.removeEventListener?.('pageshow', this.onPageShow);
    this.stopLeading();
    this.election?.close();
    this.election = null;
    this.channel.onmessage = null;
    this.channel.close();
    this.channel = null;
    this.leaderId = null;
    this.mirrored = false;
    this.setRole('follower');
    for (const [id, call] of this.calls) {
      clearTimeout(call.timer);
      call.reject(new MiniPushClientError(ClientErrorCode.Disconnected, 'the tab client closed'));
      this.calls.delete(id);
    }
    this.inbox.setConnection(ConnectionState.Disconnected);
    this.inbox.endIterators();
  }

  // ----------------------------------------------------------------- roles

  private setRole(role: TabRole): void {
    if (role === this.currentRole) return;
    this.currentRole = role;
    this.roles.emit('role', role);
  }

  private lead(): void {
    if (!this.channel || this.client) return;
    this.leaderId = this.id;
    this.setRole('leader');
    const client = new MiniPushClient(this.options, this.inbox);
    this.client = client;
    const from = this.id;
    this.forwarding = [
      this.inbox.on('event', (event) => this.post({ t: 'event', from, event })),
      this.inbox.on('read', ({ seqs, read }) =>
        this.post({ t: 'flag', from, flag: 'read', seqs, value: read }),
      ),
      this.inbox.on('seen', ({ seqs, seen }) =>
        this.post({ t: 'flag', from, flag: 'seen', seqs, value: seen }),
      ),
      this.inbox.on('archived', ({ seqs, archived }) =>
        this.post({ t: 'flag', from, flag: 'archived', seqs, value: archived }),
      ),
      this.inbox.on('head', (state) => this.post({ t: 'head', from, state })),
      this.inbox.on('reset', (state) => this.post({ t: 'reset', from, state })),
      this.inbox.on('state', (state) => this.post({ t: 'state', from, state })),
      this.inbox.on('disconnect', (info) => this.post({ t: 'disconnect', from, info })),
    ];
    this.post({ t: 'leader', from, snapshot: this.inbox.snapshot() });
    client.connect();
    // Marks asked for while no tab led.
    for (const [id, call] of this.calls) {
      this.calls.delete(id);
      clearTimeout(call.timer);
      this.run(call.method, call.seqs).then(call.resolve, call.reject);
    }
  }

  private follow(): void {
    this.stopLeading();
    this.leaderId = null;
    this.mirrored = false;
    this.setRole('follower');
    this.post({ t: 'hello', from: this.id });
  }

  private stopLeading(): void {
    for (const off of this.forwarding) off();
    this.forwarding = [];
    this.client?.release();
    this.client = null;
  }

  // ----------------------------------------------------------------- calls

  private run(method: Method, seqs: number[]): Promise<{ changed: number }> {
    const client = this.client;
    if (!client) {
      return Promise.reject(new MiniPushClientError(ClientErrorCode.NoLeader, 'not the leader'));
    }
    switch (method) {
      case 'markRead':
        return client.markRead(seqs);
      case 'markUnread':
        return client.markUnread(seqs);
      case 'markAllRead':
        return client.markAllRead();
      case 'markSeen':
        return client.markSeen(seqs);
      case 'markAllSeen':
        return client.markAllSeen();
      case 'archive':
        return client.archive(seqs);
      case 'unarchive':
        return client.unarchive(seqs);
      default: {
        const unknown: never = method;
        return Promise.reject(new Error(`unknown method ${String(unknown)}`));
      }
    }
  }

  private call(method: Method, seqs: number[]): Promise<{ changed: number }> {
    if (this.client) return this.run(method, seqs);
    if (!this.channel) {
      return Promise.reject(
        new MiniPushClientError(ClientErrorCode.Disconnected, 'connect() the tab client first'),
      );
    }
    const id = randomId();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id);
        reject(
          new MiniPushClientError(
            ClientErrorCode.NoLeader,
            `no leader tab answered ${method} within ${this.timeoutMs} ms`,
          ),
        );
      }, this.timeoutMs);
      this.calls.set(id, { method, seqs, resolve, reject, timer });
      this.post({ t: 'call', from: this.id, id, method, seqs });
    });
  }

  // ----------------------------------------------------------------- channel

  private post(message: TabMessage): void {
    this.channel?.postMessage(message);
  }

  private onTabMessage(message: TabMessage): void {
    if (this.client) {
      this.asLeader(message);
      return;
    }
    switch (message.t) {
      case 'leader':
        this.leaderId = message.from;
        this.mirror(message.snapshot);
        // The new leader never saw marks sent to the old one; ask again (marks are idempotent).
        for (const [id, call] of this.calls) {
          this.post({ t: 'call', from: this.id, id, method: call.method, seqs: call.seqs });
        }
        return;
      case 'snapshot':
        if (message.to === this.id) {
          this.leaderId = message.from;
          this.mirror(message.snapshot);
        }
        return;
      case 'result':
        this.onResult(message);
        return;
      default:
        break;
    }
    if (!this.mirrored) return;
    switch (message.t) {
      case 'event':
        this.inbox.addEvents([message.event]);
        return;
      case 'flag':
        this.inbox.setFlag(message.flag, message.seqs, message.value);
        return;
      case 'head':
        this.inbox.applyState(message.state);
        return;
      case 'reset':
        this.inbox.reset(message.state);
        return;
      case 'state':
        this.inbox.setConnection(message.state);
        return;
      case 'disconnect':
        this.inbox.emit('disconnect', message.info);
        // The leader stopped for good (kicked off): so has this browser's session.
        if (!message.info.reconnect) this.inbox.endIterators();
        return;
      default:
        return;
    }
  }

  private onResult(message: Extract<TabMessage, { t: 'result' }>): void {
    if (message.to !== this.id) return;
    const call = this.calls.get(message.id);
    if (!call) return;
    this.calls.delete(message.id);
    clearTimeout(call.timer);
    if (message.value) {
      call.resolve(message.value);
      return;
    }
    call.reject(
      new MiniPushClientError(
        message.error?.code ?? 'MINIPUSH_INTERNAL',
        message.error?.message ?? 'the leader tab failed',
      ),
    );
  }

  private asLeader(message: TabMessage): void {
    const from = this.id;
    if (message.t === 'hello') {
      this.post({ t: 'snapshot', from, to: message.from, snapshot: this.inbox.snapshot() });
    } else if (message.t === 'call') {
      this.run(message.method, message.seqs).then(
        (value) => this.post({ t: 'result', from, to: message.from, id: message.id, value }),
        (err: unknown) => {
          const error =
            err instanceof MiniPushClientError
              ? { code: err.code, message: err.message }
              : { code: 'MINIPUSH_INTERNAL', message: String(err) };
          this.post({ t: 'result', from, to: message.from, id: message.id, error });
        },
      );
    }
  }

  /** Takes the leader's view: its events and their flags, counters and connection state. */
  private mirror(snapshot: InboxSnapshot): void {
    this.mirrored = true;
    if (snapshot.lastSeq < this.inbox.lastSeq && snapshot.events.length > 0) {
      // The leader dropped its cache after expiry and refilled it: follow it.
      const first = snapshot.events[0]!;
      this.inbox.reset({ floorSeq: first.seq, headSeq: snapshot.server.headSeq });
    }
    this.inbox.addEvents(snapshot.events);
    this.inbox.lastSeq = Math.max(this.inbox.lastSeq, snapshot.lastSeq);
    this.inbox.applyState(snapshot.server);
    this.inbox.setConnection(snapshot.connection);
  }
}
