import type { Principal } from '../auth/authenticator.js';
import type { HeadState } from '../domain/head-state.js';
import { CLOSE_CODES } from '../protocol/websocket.js';
import { SharedMessage } from './shared-message.js';

/**
 * The connection under a session as the hub drives it; a transport (the WebSocket plugin)
 * adapts its socket to this.
 */
export interface SessionSocket {
  /** Bytes accepted by `send` but not yet written to the network. */
  readonly bufferedAmount: number;
  isOpen(): boolean;
  /** Sends one JSON text message. */
  send(data: string | Buffer): void;
  /**
   * Sends a message many sessions get, using its encoding for this transport made once for all
   * of them; without it, {@link send} gets the message's bytes.
   */
  sendShared?(message: SharedMessage): void;
  /** Closes with a protocol close code; the transport reports the close back. */
  close(code: number, reason: string): void;
  /** Drops the connection without a closing handshake. */
  terminate(): void;
  /** Asks for a keep-alive answer; the transport calls {@link Session.awaitingPong} off on it. */
  ping(): void;
}

/** One live connection of a user on this hub. */
export interface Session {
  readonly id: string;
  readonly uid: number;
  readonly ip: string;
  /** Whose session it is; a `refresh` swaps in the new token's principal (same uid). */
  principal: Principal & { kind: 'user' };
  readonly socket: SessionSocket;
  /** Last state this client was told (hello or head); never go below it. */
  told: HeadState | null;
  /** Newer state that arrived before hello went out. */
  early: HeadState | null;
  awaitingPong: boolean;
  pingAt: number;
  /** Requests being answered. */
  inFlight: number;
  closed: boolean;
  /** Being closed for not reading; nothing more is queued for it. */
  dropping: boolean;
}

/** A session that stopped reading is cut this long after its close frame. */
const TERMINATE_AFTER_MS = 1000;

/** The live sessions of one hub, by id and by user, and the one way to send to them. */
export class SessionRegistry {
  private readonly byId = new Map<string, Session>();
  private readonly byUid = new Map<number, Set<Session>>();

  constructor(
    private readonly maxBufferedBytes: number,
    private readonly onDrop?: (session: Session) => void,
  ) {}

  add(session: Session): void {
    this.byId.set(session.id, session);
    let users = this.byUid.get(session.uid);
    if (!users) this.byUid.set(session.uid, (users = new Set()));
    users.add(session);
  }

  /** Forgets a session; true when it was its user's last one here. */
  remove(session: Session): boolean {
    this.byId.delete(session.id);
    const users = this.byUid.get(session.uid);
    users?.delete(session);
    if (users && users.size === 0) {
      this.byUid.delete(session.uid);
      return true;
    }
    return false;
  }

  get(id: string): Session | undefined {
    return this.byId.get(id);
  }

  /** The user's sessions on this hub (none: an empty set). */
  ofUser(uid: number): ReadonlySet<Session> {
    return this.byUid.get(uid) ?? NONE;
  }

  all(): IterableIterator<Session> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }

  /** Live sessions and distinct users. */
  counts(): { sessions: number; users: number } {
    return { sessions: this.byId.size, users: this.byUid.size };
  }

  /** Sends if the client keeps up; closes it when its unsent buffer passes the limit. */
  send(session: Session, message: object | string | Buffer | SharedMessage): void {
    const { socket } = session;
    if (session.closed || session.dropping || !socket.isOpen()) return;
    if (socket.bufferedAmount > this.maxBufferedBytes) {
      this.onDrop?.(session);
      socket.close(CLOSE_CODES.tooSlow, 'too slow: unsent buffer over the limit');
      // A client that reads nothing will not complete the close handshake either.
      setTimeout(() => socket.terminate(), TERMINATE_AFTER_MS).unref();
      session.dropping = true;
      return;
    }
    if (message instanceof SharedMessage) {
      if (socket.sendShared) socket.sendShared(message);
      else socket.send(message.bytes);
      return;
    }
    socket.send(
      typeof message === 'string' || Buffer.isBuffer(message) ? message : JSON.stringify(message),
    );
  }
}

const NONE: ReadonlySet<Session> = new Set();
