import {
  headStateOf,
  isNewer,
  mergeHeads,
  sameHead,
  type HeadChange,
  type HeadState,
} from '../domain/head-state.js';
import type { Session, SessionRegistry } from './session-registry.js';
import { SharedMessage } from './shared-message.js';

/** Seen by metrics and tracing: what the nudger did with head changes. */
export interface NudgeObserver {
  /**
   * `count` sessions of one user were told a head at once; `latencyMs` from the log time of
   * the newest command behind it, when known.
   */
  onNudgesSent?(count: number, latencyMs: number | null): void;
  /** A change was merged into a nudge already waiting for its window. */
  onNudgeCoalesced?(): void;
}

export interface NudgerOptions {
  readonly registry: SessionRegistry;
  /** At most one nudge per user per this many ms: the first at once, later ones merged. */
  readonly windowMs: number;
  readonly now: () => number;
  readonly observer?: NudgeObserver;
  /**
   * Wraps the handling of each change for a user with `sessions` here, e.g. in a span that
   * continues the change's trace; `nudge` returns true when they were told at once.
   */
  readonly around?: (change: HeadChange, sessions: number, nudge: () => boolean) => void;
}

interface UserNudges {
  lastSentAt: number;
  pending: HeadState | null;
  timer: NodeJS.Timeout | null;
}

function headMessage(state: HeadState): SharedMessage {
  return new SharedMessage(
    Buffer.from(
      `{"type":"head","headSeq":${state.headSeq},"floorSeq":${state.floorSeq},` +
        `"unreadCount":${state.unreadCount},"unseenCount":${state.unseenCount},` +
        `"archivedCount":${state.archivedCount},"readVersion":${state.readVersion}}`,
    ),
  );
}

/**
 * Merging `state` into what a session was told gives `state` itself (see `mergeHeads`): it is
 * at least as far in every field and its unread count is the newer one. The usual case, a new
 * head, so the session can share `state` and its message instead of a merge of its own.
 */
function covers(state: HeadState, told: HeadState): boolean {
  return (
    state.headSeq >= told.headSeq &&
    state.floorSeq >= told.floorSeq &&
    (state.readVersion > told.readVersion ||
      (state.readVersion === told.readVersion && state.headSeq >= told.headSeq))
  );
}

/**
 * Turns head changes from the heads stream into `head` messages: per user at most one per
 * window, and per session never a state lower than one it was told.
 */
export class Nudger {
  private readonly users = new Map<number, UserNudges>();

  constructor(private readonly options: NudgerOptions) {}

  /** Handles one delivery of the heads stream. */
  onChanges(changes: readonly HeadChange[]): void {
    const { registry, around } = this.options;
    for (const change of changes) {
      const sessions = registry.ofUser(change.uid).size;
      if (sessions === 0) continue;
      const nudge = () => this.nudge(change.uid, headStateOf(change));
      if (around) around(change, sessions, nudge);
      else nudge();
    }
  }

  /**
   * A session was greeted with `state` (its hello): from now on it is told only what is newer,
   * starting with whatever arrived while the hello was on its way.
   */
  greeted(session: Session, state: HeadState): void {
    session.told = state;
    const early = session.early;
    session.early = null;
    if (early && isNewer(early, state)) this.tell(session, mergeHeads(state, early));
  }

  /** The user has no session here any more. */
  forget(uid: number): void {
    const entry = this.users.get(uid);
    if (entry?.timer) clearTimeout(entry.timer);
    this.users.delete(uid);
  }

  close(): void {
    for (const entry of this.users.values()) if (entry.timer) clearTimeout(entry.timer);
    this.users.clear();
  }

  /** True when the user's sessions were told at once, false when it waits for the window. */
  private nudge(uid: number, state: HeadState): boolean {
    const { windowMs, now, observer } = this.options;
    let entry = this.users.get(uid);
    if (!entry)
      this.users.set(uid, (entry = { lastSentAt: -Infinity, pending: null, timer: null }));
    const at = now();
    if (entry.timer === null && at - entry.lastSentAt >= windowMs) {
      entry.lastSentAt = at;
      this.deliver(uid, state);
      return true;
    }
    if (entry.pending) observer?.onNudgeCoalesced?.();
    entry.pending = mergeHeads(entry.pending, state);
    if (entry.timer === null) {
      const current = entry;
      entry.timer = setTimeout(
        () => {
          current.timer = null;
          const pending = current.pending;
          current.pending = null;
          if (pending) {
            current.lastSentAt = now();
            this.deliver(uid, pending);
          }
        },
        Math.max(0, windowMs - (at - entry.lastSentAt)),
      );
    }
    return false;
  }

  private deliver(uid: number, state: HeadState): void {
    const { registry, observer } = this.options;
    // Sessions told less than `state` in every field (the usual case) are now told exactly
    // `state`: one message, serialised and framed once, the same bytes for each socket.
    let shared: SharedMessage | null = null;
    // The others get what they merge to, usually the same for all of them too.
    let merged: { state: HeadState; message: SharedMessage } | null = null;
    let sent = 0;
    for (const session of registry.ofUser(uid)) {
      const told = session.told;
      if (told === null) {
        session.early = mergeHeads(session.early, state);
        continue;
      }
      if (!isNewer(state, told)) continue;
      if (covers(state, told)) {
        session.told = state;
        registry.send(session, (shared ??= headMessage(state)));
      } else {
        const next = mergeHeads(told, state);
        if (!merged || !sameHead(merged.state, next))
          merged = { state: next, message: headMessage(next) };
        session.told = merged.state;
        registry.send(session, merged.message);
      }
      sent++;
    }
    if (sent > 0) observer?.onNudgesSent?.(sent, this.latency(state));
  }

  /** Tells one session `state` unless it knows as much already. */
  private tell(session: Session, state: HeadState): void {
    if (session.told === null) {
      session.early = mergeHeads(session.early, state);
      return;
    }
    if (!isNewer(state, session.told)) return;
    const next = mergeHeads(session.told, state);
    session.told = next;
    this.options.registry.send(session, headMessage(next));
    this.options.observer?.onNudgesSent?.(1, this.latency(state));
  }

  private latency(state: HeadState): number | null {
    return state.logTime !== undefined ? this.options.now() - state.logTime : null;
  }
}
