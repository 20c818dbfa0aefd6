import { backoffDelay } from './backoff.js';
import { ClientErrorCode, ConnectionState, DisconnectCode, shouldReconnect } from './codes.js';
import {
  EVENT_FLAGS,
  Inbox,
  InboxView,
  type ClientEvents,
  type EventFlag,
  type InboxCounts,
  type ListFilter,
} from './inbox.js';
import {
  OPEN,
  SUBPROTOCOL,
  type Answers,
  type FeedEvent,
  type FeedPage,
  type HeadState,
  type HelloMessage,
  type RequestType,
  type WebSocketConstructor,
  type WebSocketLike,
} from './protocol.js';
import { readSeqsOfBlock } from './read-blocks.js';
import { SseConnection, type FetchLike } from './sse-connection.js';
import { expiresSoon } from './token.js';

/**
 * How the client reaches the hub: `websocket`, `sse` (Server-Sent Events for the server's
 * messages, REST for requests), or `auto`: WebSocket first, SSE when it cannot connect.
 */
export type Transport = 'websocket' | 'sse' | 'auto';

/** Options of {@link MiniPushClient}. Give `token`, `getToken`, or both. */
export interface MiniPushClientOptions {
  /** WebSocket URL of a hub, e.g. `wss://push.example.com/v1/ws`. Required. */
  readonly url: string;
  /** A user JWT (`sub` = uid) to connect with. Default: ask `getToken()`. */
  readonly token?: string;
  /**
   * Returns a fresh user JWT. Called before the first connect when there is no `token`, after the
   * server refuses or expires the token (close codes 4401, 4402), before a reconnect when the
   * token expires within `tokenRefreshMarginMs`, and while connected that long before the token
   * expires, to hand the open session a new one in-band (`refresh`) so it need not drop. Without
   * it, a refused or expired token stops the client.
   */
  readonly getToken?: () => Promise<string>;
  /**
   * The WebSocket constructor. Default `globalThis.WebSocket` (browsers, Node 22+); on Node 20
   * pass `WebSocket` from the `ws` package.
   */
  readonly WebSocket?: WebSocketConstructor;
  /** Backoff window of the first reconnect, in ms; it doubles per failed try. Default 500. */
  readonly minReconnectDelayMs?: number;
  /** Largest backoff window, in ms. Default 20000. */
  readonly maxReconnectDelayMs?: number;
  /** How long a connect may take until `hello`, in ms, before it is retried. Default 10000. */
  readonly connectTimeoutMs?: number;
  /** How long a request waits for its answer (and for a connection), in ms. Default 10000. */
  readonly requestTimeoutMs?: number;
  /**
   * Get a new token this many ms before the current one expires: before a connect, and in-band
   * on an open session. Default 30000.
   */
  readonly tokenRefreshMarginMs?: number;
  /**
   * Ping the server after this many ms without a message, to find a dead connection. Default:
   * the server's ping interval from `hello` (25000 unless configured).
   */
  readonly pingIntervalMs?: number;
  /** Events per `diff`/`fetch` page, and the size of the newest page after a reset. Default 100. */
  readonly pageSize?: number;
  /** Most events kept in the local cache; the oldest go first. Default 1000. */
  readonly maxCachedEvents?: number;
  /**
   * `websocket`, `sse`, or `auto` (default): WebSocket first; when `fallbackAfter` WebSocket
   * tries in a row end before `hello` (a proxy that refuses upgrades, say) and none reached it
   * since `connect()`, SSE. Once a transport reached `hello`, the client stays on it until the
   * next `connect()`; while neither ever did, it alternates after each such run. Over SSE the
   * client's public events and methods are the same; requests go over REST.
   */
  readonly transport?: Transport;
  /** Failed tries in a row (ended before `hello`) before `auto` switches transports. Default 2. */
  readonly fallbackAfter?: number;
  /**
   * Base URL of the hub's HTTP port, for SSE and REST, e.g. `https://push.example.com`.
   * Default: `url` with `ws`/`wss` made `http`/`https` and its trailing `/v1/ws` removed.
   */
  readonly httpUrl?: string;
  /** The `fetch` SSE and REST use. Default `globalThis.fetch` (browsers, Node 18+). */
  readonly fetch?: FetchLike;
}

/** The HTTP base of a hub's WebSocket URL: `wss://h/p/v1/ws` → `https://h/p`; null if not a URL. */
export function httpBaseOf(wsUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(wsUrl);
  } catch {
    return null;
  }
  if (url.protocol === 'wss:') url.protocol = 'https:';
  else if (url.protocol === 'ws:') url.protocol = 'http:';
  url.search = '';
  url.hash = '';
  url.pathname = url.pathname.replace(/\/v1\/ws\/?$/, '');
  return url.toString().replace(/\/+$/, '');
}

/** The longest delay setTimeout keeps (2^31 − 1 ms); longer ones fire at once. */
const MAX_TIMER_MS = 2_147_483_647;

/** An error answer from the server (`code` is a `MINIPUSH_…` code) or a client failure. */
export class MiniPushClientError extends Error {
  override readonly name = 'MiniPushClientError';
  constructor(
    /** `MINIPUSH_…` from the server, or a {@link ClientErrorCode}. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** What a client of one user's inbox offers, whether it holds the socket or mirrors a tab that does. */
export interface InboxClient {
  /** The connection state (of the leader tab's socket, for a follower tab). */
  readonly state: ConnectionState;
  /** Unread events, as the server counts them (archived ones left out). */
  readonly unreadCount: number;
  /** Events never seen, as the server counts them (archived ones left out): the badge. */
  readonly unseenCount: number;
  /** Archived events, as the server counts them. */
  readonly archivedCount: number;
  /** The unread, unseen and archived counts. */
  readonly counts: InboxCounts;
  /** The server's counters as last told. */
  readonly head: HeadState;
  /** Cached events, newest first; `{ status }` keeps one view of them (default `all`). */
  list(filter?: ListFilter): FeedEvent[];
  /** Adds a callback; returns the function that removes it. */
  on<K extends keyof ClientEvents>(name: K, listener: ClientEvents[K]): () => void;
  /** New events as they arrive; ends when the client stops for good. */
  events(): AsyncIterableIterator<FeedEvent>;
  /** Marks events read; resolves once the server applied it, with how many changed. */
  markRead(seqs: readonly number[]): Promise<{ changed: number }>;
  /** Marks every event up to the highest head seen read. */
  markAllRead(): Promise<{ changed: number }>;
  /** Marks events unread again (they stay seen). */
  markUnread(seqs: readonly number[]): Promise<{ changed: number }>;
  /** Marks events seen; resolves once the server applied it, with how many changed. */
  markSeen(seqs: readonly number[]): Promise<{ changed: number }>;
  /** Marks every event up to the highest head seen seen: what opening the inbox does. */
  markAllSeen(): Promise<{ changed: number }>;
  /** Archives events: they leave the `unarchived` view and the unread and unseen counts. */
  archive(seqs: readonly number[]): Promise<{ changed: number }>;
  /** Brings archived events back into the inbox. */
  unarchive(seqs: readonly number[]): Promise<{ changed: number }>;
  connect(): void;
  disconnect(): void;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

const DEFAULTS = {
  fallbackAfter: 2,
  minReconnectDelayMs: 500,
  maxReconnectDelayMs: 20_000,
  connectTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  tokenRefreshMarginMs: 30_000,
  pageSize: 100,
  maxCachedEvents: 1000,
};

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function serverError(message: Record<string, unknown>): MiniPushClientError {
  const code = typeof message.code === 'string' ? message.code : 'MINIPUSH_INTERNAL';
  const text = typeof message.message === 'string' ? message.message : 'error';
  return new MiniPushClientError(code, text);
}

/**
 * A client of one user's MiniPush inbox over one WebSocket: it reconnects with full-jitter
 * backoff, catches up by `diff` from the last seq it has on every connect and every head nudge,
 * keeps a local cache of the whole feed with each event's flags, and follows the server's counts.
 */
export class MiniPushClient extends InboxView implements InboxClient {
  private readonly settings: typeof DEFAULTS;
  protected readonly inbox: Inbox;
  private readonly WebSocketImpl: WebSocketConstructor | null;
  private readonly fetchImpl: FetchLike | null;
  private readonly httpUrl: string | null;
  /** The transport of the next (or current) connection. */
  private current: 'websocket' | 'sse';
  /** Tries in a row on `current` that ended before hello. */
  private transportFailures = 0;
  /** A connection on `current` reached hello since `connect()`: `auto` stays on it. */
  private transportProven = false;
  /** `auto` with both transports at hand. */
  private readonly canFallBack: boolean;
  /** The SSE stream's last event id, sent as `Last-Event-ID` when it reconnects. */
  private lastEventId = '';
  private token: string | null;
  private tokenRefused = false;
  private active = false;
  private socket: WebSocketLike | null = null;
  private generation = 0;
  private attempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private lastMessageAt = 0;
  private reqCounter = 0;
  private readonly pending = new Map<number, Pending>();
  private syncing: Promise<void> | null = null;
  private syncAgain = false;
  private readSyncing: Promise<void> | null = null;
  private readSyncAgain = false;
  /** Marks of this client applied to the cache; a flag sync that overlapped one is stale. */
  private marksApplied = 0;
  /** The read version the cached `read`, `seen` and `archived` flags are known to reflect. */
  private readSynced = 0;

  /**
   * @param inbox - the model to write into; a leader tab passes the one its followers mirror.
   *   Internal: applications leave it out.
   */
  constructor(
    private readonly options: MiniPushClientOptions,
    inbox?: Inbox,
  ) {
    super();
    if (options.token === undefined && options.getToken === undefined) {
      throw new TypeError('MiniPushClient needs a token or a getToken() callback');
    }
    this.settings = {
      fallbackAfter: Math.max(1, options.fallbackAfter ?? DEFAULTS.fallbackAfter),
      minReconnectDelayMs: options.minReconnectDelayMs ?? DEFAULTS.minReconnectDelayMs,
      maxReconnectDelayMs: options.maxReconnectDelayMs ?? DEFAULTS.maxReconnectDelayMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
      requestTimeoutMs: options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs,
      tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? DEFAULTS.tokenRefreshMarginMs,
      pageSize: options.pageSize ?? DEFAULTS.pageSize,
      maxCachedEvents: options.maxCachedEvents ?? DEFAULTS.maxCachedEvents,
    };
    const transport = options.transport ?? 'auto';
    const impl =
      options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? null;
    const fetchImpl =
      options.fetch ??
      ((globalThis as { fetch?: unknown }).fetch as FetchLike | undefined)?.bind(globalThis) ??
      null;
    this.httpUrl = (options.httpUrl ?? httpBaseOf(options.url))?.replace(/\/+$/, '') ?? null;
    const sseReady = fetchImpl !== null && this.httpUrl !== null;
    if (impl === null && (transport === 'websocket' || (transport === 'auto' && !sseReady))) {
      throw new TypeError(
        'no global WebSocket: pass one as the WebSocket option (on Node 20, from the ws package)',
      );
    }
    if (transport === 'sse' && !sseReady) {
      throw new TypeError('SSE needs fetch and an http(s) URL: pass the fetch and httpUrl options');
    }
    this.WebSocketImpl = impl;
    this.fetchImpl = fetchImpl;
    this.current = transport === 'sse' || impl === null ? 'sse' : 'websocket';
    this.canFallBack = transport === 'auto' && impl !== null && sseReady;
    this.token = options.token ?? null;
    this.inbox = inbox ?? new Inbox(this.settings.maxCachedEvents);
    this.readSynced = this.inbox.head.readVersion;
  }

  /** The highest seq the cache is complete up to; the next catch-up starts after it. */
  get lastSeq(): number {
    return this.inbox.lastSeq;
  }

  on<K extends keyof ClientEvents>(name: K, listener: ClientEvents[K]): () => void {
    return this.inbox.on(name, listener);
  }

  /** The transport in use, or tried next: `websocket` or `sse`. */
  get transport(): 'websocket' | 'sse' {
    return this.current;
  }

  /** Starts connecting (and reconnecting) until `disconnect()` or a final close code. */
  connect(): void {
    if (this.active) return;
    this.active = true;
    this.attempt = 0;
    this.transportFailures = 0;
    this.transportProven = false;
    if (this.canFallBack) this.current = 'websocket';
    this.tokenRefused = false;
    void this.open();
  }

  /** Closes the socket for good: no reconnect, pending requests fail, iterators end. */
  disconnect(): void {
    if (!this.active) return;
    const socket = this.socket;
    this.stop({
      code: DisconnectCode.ClientClosed,
      reason: 'disconnect() called',
      reconnect: false,
    });
    if (socket) this.closeQuietly(socket, 1000, 'client disconnect');
  }

  /**
   * Closes the socket without reporting it: the inbox keeps its state and iterators for whoever
   * takes over (a tab handing the socket to another). Internal.
   */
  release(): void {
    const socket = this.socket;
    this.active = false;
    this.generation++;
    this.socket = null;
    this.clearTimers();
    this.failPending();
    if (socket) this.closeQuietly(socket, 1000, 'handed over');
  }

  async markRead(seqs: readonly number[]): Promise<{ changed: number }> {
    const answer = await this.request('markRead', { seqs: [...seqs] });
    this.marksApplied++;
    this.inbox.setRead(seqs, true);
    await this.refreshStats();
    return { changed: answer.changed };
  }

  async markAllRead(): Promise<{ changed: number }> {
    const upTo = this.inbox.head.headSeq;
    if (upTo === 0) return { changed: 0 };
    const answer = await this.request('markRead', { upTo });
    this.marksApplied++;
    this.inbox.setRead(
      this.inbox
        .list()
        .filter((e) => e.seq <= upTo)
        .map((e) => e.seq),
      true,
    );
    await this.refreshStats();
    return { changed: answer.changed };
  }

  async markUnread(seqs: readonly number[]): Promise<{ changed: number }> {
    const answer = await this.request('markUnread', { seqs: [...seqs] });
    this.marksApplied++;
    this.inbox.setRead(seqs, false);
    await this.refreshStats();
    return { changed: answer.changed };
  }

  markSeen(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.mark('markSeen', { seqs: [...seqs] }, 'seen', true);
  }

  async markAllSeen(): Promise<{ changed: number }> {
    const upTo = this.inbox.head.headSeq;
    if (upTo === 0) return { changed: 0 };
    return this.mark('markSeen', { upTo }, 'seen', true);
  }

  archive(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.mark('archive', { seqs: [...seqs] }, 'archived', true);
  }

  unarchive(seqs: readonly number[]): Promise<{ changed: number }> {
    return this.mark('unarchive', { seqs: [...seqs] }, 'archived', false);
  }

  /** Sends a seen or archive mark, then sets the flag of the cached events it covers. */
  private async mark(
    type: 'markSeen' | 'archive' | 'unarchive',
    target: { seqs: number[] } | { upTo: number },
    flag: EventFlag,
    value: boolean,
  ): Promise<{ changed: number }> {
    const answer = await this.request(type, target);
    this.marksApplied++;
    const seqs =
      'seqs' in target
        ? target.seqs
        : this.inbox
            .list()
            .filter((e) => e.seq <= target.upTo)
            .map((e) => e.seq);
    this.inbox.setFlag(flag, seqs, value);
    await this.refreshStats();
    return { changed: answer.changed };
  }

  /**
   * Sends one request and resolves with its answer; waits for a connection first. Rejects with
   * the server's error code, or `CLIENT_TIMEOUT` / `CLIENT_DISCONNECTED`.
   */
  async request<T extends RequestType>(
    type: T,
    fields: Record<string, unknown> = {},
    timeoutMs = this.settings.requestTimeoutMs,
  ): Promise<Answers[T]> {
    const deadline = Date.now() + timeoutMs;
    await this.whenConnected(timeoutMs);
    const socket = this.socket;
    if (!socket || socket.readyState !== OPEN) {
      throw new MiniPushClientError(ClientErrorCode.Disconnected, 'the socket closed');
    }
    const reqId = ++this.reqCounter;
    return new Promise<Answers[T]>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.pending.delete(reqId);
          reject(
            new MiniPushClientError(
              ClientErrorCode.Timeout,
              `no answer to ${type} within ${timeoutMs} ms`,
            ),
          );
        },
        Math.max(0, deadline - Date.now()),
      );
      this.pending.set(reqId, {
        resolve: (value) => resolve(value as Answers[T]),
        reject,
        timer,
      });
      socket.send(JSON.stringify({ ...fields, type, reqId }));
    });
  }

  // ----------------------------------------------------------------- connection

  private whenConnected(timeoutMs: number): Promise<void> {
    if (this.state === ConnectionState.Connected) return Promise.resolve();
    if (!this.active) {
      return Promise.reject(
        new MiniPushClientError(ClientErrorCode.Disconnected, 'the client is not connecting'),
      );
    }
    return new Promise((resolve, reject) => {
      const off = this.inbox.on('state', (state) => {
        if (state === ConnectionState.Connected) {
          done();
          resolve();
        } else if (state === ConnectionState.Disconnected) {
          done();
          reject(new MiniPushClientError(ClientErrorCode.Disconnected, 'the client stopped'));
        }
      });
      const timer = setTimeout(() => {
        done();
        reject(
          new MiniPushClientError(ClientErrorCode.Timeout, `not connected within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      const done = () => {
        off();
        clearTimeout(timer);
      };
    });
  }

  private async currentToken(): Promise<string> {
    const { getToken } = this.options;
    const stale =
      this.token === null ||
      this.tokenRefused ||
      expiresSoon(this.token, Date.now(), this.settings.tokenRefreshMarginMs);
    if (stale && getToken) {
      const token = await getToken();
      if (typeof token !== 'string' || token === '') throw new Error('getToken() gave no token');
      this.token = token;
      this.tokenRefused = false;
    }
    if (this.token === null) throw new Error('no token');
    return this.token;
  }

  private async open(): Promise<void> {
    const generation = ++this.generation;
    this.inbox.setConnection(ConnectionState.Connecting);
    let token: string;
    try {
      token = await this.currentToken();
    } catch (err) {
      if (generation !== this.generation || !this.active) return;
      this.inbox.emit('error', err instanceof Error ? err : new Error(String(err)));
      this.closed({
        code: DisconnectCode.TokenUnavailable,
        reason: 'getToken() failed',
        reconnect: true,
      });
      return;
    }
    if (generation !== this.generation || !this.active) return;
    let socket: WebSocketLike;
    try {
      if (this.current === 'sse') {
        socket = new SseConnection({
          baseUrl: this.httpUrl!,
          token,
          lastEventId: this.lastEventId,
          fetch: this.fetchImpl!,
          onEventId: (id) => {
            this.lastEventId = id;
          },
        });
      } else {
        // The token rides as a subprotocol so it stays out of URLs and access logs.
        socket = new this.WebSocketImpl!(this.options.url, [
          SUBPROTOCOL,
          `bearer.${token}`,
        ]) as WebSocketLike;
      }
    } catch (err) {
      // A malformed URL never gets better: retrying would only spin.
      this.inbox.emit('error', err instanceof Error ? err : new Error(String(err)));
      this.stop({ code: DisconnectCode.ClientClosed, reason: 'bad url', reconnect: false });
      return;
    }
    this.socket = socket;
    this.connectTimer = setTimeout(() => {
      this.drop(socket, DisconnectCode.ConnectTimeout, 'no hello in time');
    }, this.settings.connectTimeoutMs);
    socket.onmessage = (event) => {
      if (socket === this.socket) this.onMessage(event.data);
    };
    socket.onclose = (event) => {
      if (socket !== this.socket) return;
      this.onSocketClosed(event.code, event.reason);
    };
    // A failed socket also closes; the close handler decides what follows.
    socket.onerror = () => undefined;
  }

  /** Closes a socket we gave up on, as if it closed with `code`. */
  private drop(socket: WebSocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.closeQuietly(socket, 4000, reason);
    this.onSocketClosed(code, reason);
  }

  private closeQuietly(socket: WebSocketLike, code: number, reason: string): void {
    socket.onmessage = null;
    socket.onclose = null;
    // Not null: the ws package throws an error event nobody listens to (closing a socket that
    // is still connecting emits one).
    socket.onerror = () => undefined;
    try {
      socket.close(code, reason);
    } catch {
      // Closing a socket that never opened may throw in some implementations; it is gone anyway.
    }
  }

  private onSocketClosed(code: number, reason: string): void {
    this.noteTransport(this.state === ConnectionState.Connected, code);
    this.socket = null;
    this.clearTimers();
    this.failPending();
    if (code === DisconnectCode.Unauthenticated || code === DisconnectCode.TokenExpired) {
      if (this.options.getToken) {
        this.tokenRefused = true;
        this.closed({ code, reason, reconnect: true });
      } else {
        this.stop({ code, reason, reconnect: false });
      }
      return;
    }
    if (!shouldReconnect(code)) {
      this.stop({ code, reason, reconnect: false });
      return;
    }
    this.closed({ code, reason, reconnect: true });
  }

  /**
   * `auto`: a run of `fallbackAfter` tries that ended before hello, on a transport that never
   * reached it since `connect()`, moves to the other one. A refused token says nothing about
   * the transport.
   */
  private noteTransport(greeted: boolean, code: number): void {
    if (!this.canFallBack) return;
    if (greeted) {
      this.transportProven = true;
      this.transportFailures = 0;
      return;
    }
    if (this.transportProven || !shouldReconnect(code)) return;
    if (code === DisconnectCode.Unauthenticated || code === DisconnectCode.TokenExpired) return;
    if (++this.transportFailures < this.settings.fallbackAfter) return;
    this.transportFailures = 0;
    this.current = this.current === 'websocket' ? 'sse' : 'websocket';
    // The other transport starts its backoff over.
    this.attempt = 0;
  }

  /** Reports a drop and schedules the next try. */
  private closed(info: { code: number; reason: string; reconnect: true }): void {
    this.inbox.setConnection(ConnectionState.Connecting);
    this.inbox.emit('disconnect', info);
    const delay = backoffDelay(
      this.attempt++,
      this.settings.minReconnectDelayMs,
      this.settings.maxReconnectDelayMs,
    );
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.active) void this.open();
    }, delay);
  }

  /** Stops for good. */
  private stop(info: { code: number; reason: string; reconnect: false }): void {
    this.active = false;
    this.generation++;
    this.socket = null;
    this.clearTimers();
    this.failPending();
    this.inbox.setConnection(ConnectionState.Disconnected);
    this.inbox.emit('disconnect', info);
    this.inbox.endIterators();
  }

  private clearTimers(): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.connectTimer = this.pingTimer = this.reconnectTimer = this.refreshTimer = null;
  }

  private failPending(): void {
    for (const [reqId, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(
        new MiniPushClientError(ClientErrorCode.Disconnected, 'the socket closed before an answer'),
      );
      this.pending.delete(reqId);
    }
  }

  // ----------------------------------------------------------------- messages

  private onMessage(data: unknown): void {
    this.lastMessageAt = Date.now();
    let message: unknown;
    try {
      message = JSON.parse(String(data));
    } catch {
      this.inbox.emit('error', new Error('the server sent a frame that is not JSON'));
      return;
    }
    if (!isObject(message) || typeof message.type !== 'string') return;
    const reqId = message.reqId;
    if (typeof reqId === 'number' && this.pending.has(reqId)) {
      const pending = this.pending.get(reqId)!;
      this.pending.delete(reqId);
      clearTimeout(pending.timer);
      if (message.type === 'error') {
        pending.reject(serverError(message));
      } else {
        pending.resolve(message);
      }
      return;
    }
    switch (message.type) {
      case 'hello':
        this.onHello(message as unknown as HelloMessage);
        break;
      case 'head':
        this.onHead(message as unknown as HeadState);
        break;
      case 'error':
        this.inbox.emit('error', serverError(message));
        break;
      default:
        // kickoff is followed by close code 4500, which is what stops the client.
        break;
    }
  }

  private onHello(hello: HelloMessage): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    this.attempt = 0;
    if (hello.headSeq < this.inbox.lastSeq) {
      // The server lost events we had (its data was replaced): its counters start over too.
      this.inbox.forgetState();
      this.readSynced = 0;
    }
    this.inbox.applyState(hello);
    if (this.inbox.list().length === 0) this.readSynced = hello.readVersion;
    const every = this.options.pingIntervalMs ?? hello.limits?.pingIntervalMs ?? 25_000;
    this.pingTimer = setInterval(() => this.keepAlive(every), Math.max(10, every / 2));
    this.inbox.setConnection(ConnectionState.Connected);
    this.scheduleRefresh(hello.tokenExpiresAt ?? null);
    this.sync();
    this.syncReadStates();
  }

  /**
   * With `getToken`, hands the open session a new token `tokenRefreshMarginMs` before the one it
   * runs on expires. A failed try is tried again, until the server closes the session at the
   * expiry (4402) and the reconnect asks `getToken` once more.
   */
  private scheduleRefresh(expiresAt: number | null, retryMs = 0): void {
    const { getToken } = this.options;
    if (!getToken || expiresAt === null) return;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    const due = expiresAt - this.settings.tokenRefreshMarginMs - Date.now();
    const socket = this.socket;
    this.refreshTimer = setTimeout(
      () => {
        this.refreshTimer = null;
        if (socket !== this.socket || this.state !== ConnectionState.Connected) return;
        // Timers hold at most about 24.8 days: a longer-lived token is looked at again later.
        if (expiresAt - this.settings.tokenRefreshMarginMs - Date.now() > MAX_TIMER_MS) {
          this.scheduleRefresh(expiresAt);
          return;
        }
        getToken()
          .then(async (token) => {
            if (typeof token !== 'string' || token === '')
              throw new Error('getToken() gave no token');
            const answer = await this.request('refresh', { token });
            this.token = token;
            this.scheduleRefresh(answer.tokenExpiresAt);
          })
          .catch((err: unknown) => {
            if (socket !== this.socket) return;
            this.inbox.emit('error', err instanceof Error ? err : new Error(String(err)));
            // Again in a while, while the current token lasts.
            if (Date.now() < expiresAt)
              this.scheduleRefresh(expiresAt, Math.max(1000, retryMs * 2));
          });
      },
      Math.min(Math.max(retryMs, due, 0), MAX_TIMER_MS),
    );
  }

  private onHead(state: HeadState): void {
    this.inbox.applyState(state);
    if (state.headSeq > this.inbox.lastSeq || state.floorSeq > this.inbox.lastSeq + 1) this.sync();
    if (state.readVersion > this.readSynced) this.syncReadStates();
  }

  private keepAlive(every: number): void {
    const socket = this.socket;
    if (!socket || Date.now() - this.lastMessageAt < every) return;
    this.lastMessageAt = Date.now();
    this.request('ping', {}, this.settings.requestTimeoutMs).catch((err: unknown) => {
      if (err instanceof MiniPushClientError && err.code === ClientErrorCode.Timeout)
        this.drop(socket, DisconnectCode.NoPong, 'no answer to ping');
    });
  }

  // ----------------------------------------------------------------- catch-up

  /** Runs a catch-up, or one more after the running one when a nudge came meanwhile. */
  private sync(): void {
    if (this.syncing) {
      this.syncAgain = true;
      return;
    }
    this.syncing = this.catchUp()
      .catch((err: unknown) => this.reportBackground(err))
      .finally(() => {
        this.syncing = null;
        if (this.syncAgain && this.state === ConnectionState.Connected) this.sync();
      });
  }

  private async catchUp(): Promise<void> {
    let more = true;
    while (more || this.syncAgain) {
      this.syncAgain = false;
      // The cache mirrors the whole feed, archived events too, each with its flags.
      const page = await this.request('diff', {
        after: this.inbox.lastSeq,
        limit: this.settings.pageSize,
        status: 'all',
      });
      this.inbox.applyState({ headSeq: page.headSeq, floorSeq: page.floorSeq });
      if (page.reset || page.headSeq < this.inbox.lastSeq) {
        await this.refetchNewest(page);
        more = false;
        continue;
      }
      this.inbox.addEvents(page.events);
      more = page.more;
    }
  }

  /** After expiry: drop the cache and take the newest page, as a client opened fresh would. */
  private async refetchNewest(page: FeedPage): Promise<void> {
    const version = this.inbox.head.readVersion;
    const head = page.headSeq;
    const floor = Math.max(1, page.floorSeq);
    this.inbox.reset({ floorSeq: floor, headSeq: head });
    const from = Math.max(floor, head - this.settings.pageSize + 1);
    this.inbox.lastSeq = from - 1;
    if (head >= from) {
      const newest = await this.request('fetch', {
        from,
        to: head,
        order: 'asc',
        limit: this.settings.pageSize,
        status: 'all',
      });
      this.inbox.addEvents(newest.events);
    }
    this.inbox.lastSeq = Math.max(this.inbox.lastSeq, head);
    // Every cached event is fresh from the fetch, so its flag is at least this new.
    this.readSynced = version;
  }

  /** Brings the cached `read`, `seen` and `archived` flags up to the server's read version. */
  private syncReadStates(): void {
    if (this.readSyncing) {
      this.readSyncAgain = true;
      return;
    }
    if (this.inbox.head.readVersion === this.readSynced) return;
    this.readSyncing = this.fetchReadStates()
      .catch((err: unknown) => this.reportBackground(err))
      .finally(() => {
        this.readSyncing = null;
        if (this.readSyncAgain && this.state === ConnectionState.Connected) {
          this.readSyncAgain = false;
          this.syncReadStates();
        }
      });
  }

  private async fetchReadStates(): Promise<void> {
    const version = this.inbox.head.readVersion;
    const marks = this.marksApplied;
    // One version covers the three bitmaps, and a head does not say which changed: ask all.
    const answers = await Promise.all(
      EVENT_FLAGS.map((state) => this.request('readStates', { format: 'blocks', state })),
    );
    if (this.marksApplied !== marks) {
      // The answers may predate a mark just applied here: taking them would flip flags back.
      this.readSyncAgain = true;
      return;
    }
    for (const [i, answer] of answers.entries()) {
      const blocks = 'blocks' in answer ? answer.blocks : [];
      const seqs = new Set<number>();
      for (const block of blocks) for (const seq of readSeqsOfBlock(block)) seqs.add(seq);
      const upTo = blocks.reduce((top, block) => Math.max(top, block.seq), 0);
      this.inbox.syncFlag(EVENT_FLAGS[i]!, seqs, upTo);
    }
    this.readSynced = version;
  }

  private async refreshStats(): Promise<void> {
    try {
      this.inbox.applyState(await this.request('stats'));
    } catch (err) {
      // The mark itself succeeded; the next head nudge brings the count instead.
      this.reportBackground(err);
    }
  }

  private reportBackground(err: unknown): void {
    // A closed socket ends the work; the next hello starts it over.
    if (err instanceof MiniPushClientError && err.code === ClientErrorCode.Disconnected) return;
    this.inbox.emit('error', err instanceof Error ? err : new Error(String(err)));
  }
}
