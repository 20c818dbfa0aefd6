import type { Session, SessionSocket } from '../../src/hubs/session-registry.js';

/** A socket that does nothing, with the given parts replaced. */
export function quietSocket(overrides: Partial<SessionSocket> = {}): SessionSocket {
  return {
    bufferedAmount: 0,
    isOpen: () => true,
    send: () => undefined,
    close: () => undefined,
    terminate: () => undefined,
    ping: () => undefined,
    ...overrides,
  };
}

/** A fresh session of `uid` on `socket`, as a hub registers it before its hello. */
export function fakeSession<S extends SessionSocket>(
  id: string,
  uid: number,
  socket: S,
): Session & { socket: S } {
  return {
    id,
    uid,
    ip: '127.0.0.1',
    principal: { kind: 'user', uid },
    socket,
    told: null,
    early: null,
    awaitingPong: false,
    pingAt: 0,
    inFlight: 0,
    closed: false,
    dropping: false,
  };
}
