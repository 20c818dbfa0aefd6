/**
 * Leader election among the tabs of one origin: exactly one tab at a time holds the socket.
 * Web Locks do it natively (the browser hands the lock to the next waiting tab when the holder
 * closes); where they are missing, tabs agree over a BroadcastChannel with heartbeats.
 */

/** The part of `navigator.locks` the election uses. */
export interface LockManagerLike {
  request(
    name: string,
    options: { signal?: AbortSignal },
    callback: (lock: unknown) => Promise<void>,
  ): Promise<unknown>;
}

/** The part of a BroadcastChannel the tabs use. */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
}

/** A BroadcastChannel constructor (`globalThis.BroadcastChannel` by default). */
export type BroadcastChannelConstructor = new (name: string) => object;

export interface ElectionOptions {
  /** Tabs with the same name compete for one leadership. */
  readonly name: string;
  /** Web Locks, or null to elect over the channel. */
  readonly locks: LockManagerLike | null;
  readonly BroadcastChannel: BroadcastChannelConstructor;
  /** Heartbeat period of the channel election, in ms; a leader silent for 3 beats is replaced. */
  readonly heartbeatMs: number;
  /** This tab became the leader. */
  readonly onElected: () => void;
  /** This tab lost the leadership to another (channel election only, after a split). */
  readonly onDeposed: () => void;
}

/** A running election; `close()` gives up the leadership or the place in the queue. */
export interface Election {
  readonly method: 'web-locks' | 'broadcast-channel';
  close(): void;
}

export function randomId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  return crypto?.randomUUID?.() ?? `${Date.now().toString(36)}-${Math.random().toString(36)}`;
}

/** Joins the election; `onElected` runs when this tab leads. */
export function electLeader(options: ElectionOptions): Election {
  return options.locks ? lockElection(options, options.locks) : channelElection(options);
}

function lockElection(options: ElectionOptions, locks: LockManagerLike): Election {
  const abort = new AbortController();
  let release: (() => void) | null = null;
  let closed = false;
  locks
    .request(`minipush:${options.name}`, { signal: abort.signal }, () => {
      if (closed) return Promise.resolve();
      // Holding the promise open holds the lock until close() or the tab goes away.
      const held = new Promise<void>((resolve) => {
        release = resolve;
      });
      options.onElected();
      return held;
    })
    .catch(() => {
      // Aborted while queued: close() came first.
    });
  return {
    method: 'web-locks',
    close() {
      closed = true;
      abort.abort();
      release?.();
    },
  };
}

type ElectionMessage =
  | { readonly t: 'beat'; readonly id: string }
  | { readonly t: 'claim'; readonly id: string }
  | { readonly t: 'resign'; readonly id: string }
  | { readonly t: 'who' };

function channelElection(options: ElectionOptions): Election {
  const id = randomId();
  const channel = new options.BroadcastChannel(
    `minipush:${options.name}:election`,
  ) as BroadcastChannelLike;
  const beat = options.heartbeatMs;
  let leading = false;
  let lastBeat = Date.now();
  let claim: ReturnType<typeof setTimeout> | null = null;
  let closed = false;

  const post = (message: ElectionMessage) => {
    if (!closed) channel.postMessage(message);
  };
  const cancelClaim = () => {
    if (claim) clearTimeout(claim);
    claim = null;
  };
  const startClaim = () => {
    if (leading || claim || closed) return;
    post({ t: 'claim', id });
    const startedAt = Date.now();
    claim = setTimeout(() => {
      claim = null;
      if (closed || lastBeat > startedAt) return;
      leading = true;
      post({ t: 'beat', id });
      options.onElected();
    }, beat);
  };

  channel.onmessage = (event) => {
    const message = event.data as ElectionMessage;
    switch (message.t) {
      case 'beat':
        if (leading) {
          // Two leaders after a split: the higher id keeps it, so both sides agree who yields.
          if (message.id > id) {
            leading = false;
            lastBeat = Date.now();
            options.onDeposed();
          } else {
            post({ t: 'beat', id });
          }
          return;
        }
        lastBeat = Date.now();
        cancelClaim();
        return;
      case 'claim':
        if (leading) post({ t: 'beat', id });
        else if (claim && message.id > id) {
          cancelClaim();
          lastBeat = Date.now();
        }
        return;
      case 'resign':
        if (!leading) {
          lastBeat = 0;
          startClaim();
        }
        return;
      case 'who':
        if (leading) post({ t: 'beat', id });
        return;
      default:
        return;
    }
  };

  const timer = setInterval(() => {
    if (leading) post({ t: 'beat', id });
    else if (Date.now() - lastBeat > 3 * beat) startClaim();
  }, beat);
  // A running leader answers at once, so a new tab does not wait out three beats to learn of it.
  post({ t: 'who' });
  lastBeat = Date.now() - 2 * beat;

  return {
    method: 'broadcast-channel',
    close() {
      if (closed) return;
      if (leading) post({ t: 'resign', id });
      closed = true;
      leading = false;
      cancelClaim();
      clearInterval(timer);
      channel.onmessage = null;
      channel.close();
    },
  };
}
