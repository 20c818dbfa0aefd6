/**
 * Why a client is not connected, as numeric codes. Codes from 1000 up mirror the server's
 * WebSocket close codes (`CLOSE_CODES` in the hub's protocol); codes below 1000 are the client's
 * own and never travel on the wire.
 *
 * Codes 4500–4999 and {@link DisconnectCode.ClientClosed} are final: the client does not
 * reconnect after them. Every other code reconnects with backoff.
 */
export const DisconnectCode = {
  /** `disconnect()` was called. Final. */
  ClientClosed: 0,
  /** No open socket and `hello` within `connectTimeoutMs`: reconnect. */
  ConnectTimeout: 1,
  /** The server stopped answering the client's own pings: reconnect. */
  NoPong: 2,
  /** `getToken()` threw or gave no token: reconnect (and ask again). */
  TokenUnavailable: 3,
  /** Normal closure by the server: reconnect. */
  Normal: 1000,
  /** A binary frame: the protocol is JSON text. Reconnect. */
  UnsupportedData: 1003,
  /** The connection dropped without a close frame (network loss, server killed): reconnect. */
  Abnormal: 1006,
  /** A frame over the server's size limit: reconnect. */
  MessageTooBig: 1009,
  /** The server is shutting down: reconnect, after backoff, to it or another hub. */
  ServiceRestart: 1012,
  /** The client did not read fast enough: reconnect. */
  TooSlow: 4008,
  /** The client did not answer the server's pings: reconnect. */
  PingTimeout: 4009,
  /**
   * Missing, invalid or expired token: refresh it with `getToken()`, then reconnect. Final for a
   * client that has no `getToken()`, since the same token would be refused again.
   */
  Unauthenticated: 4401,
  /**
   * The session's token expired before a new one was handed over: get one with `getToken()`,
   * then reconnect. Final for a client that has no `getToken()`.
   */
  TokenExpired: 4402,
  /** Kicked off: the user opened more sessions than the quota. Final. */
  KickedOff: 4500,
  /** These credentials may not open a session (an API key). Final. */
  Forbidden: 4503,
} as const;

export type DisconnectCode = (typeof DisconnectCode)[keyof typeof DisconnectCode];

/** False for the codes after which the client must not reconnect. */
export function shouldReconnect(code: number): boolean {
  if (code === DisconnectCode.ClientClosed) return false;
  return code < 4500 || code > 4999;
}

/** Connection state of a client (or, for a follower tab, of the leader tab's client). */
export enum ConnectionState {
  /** Not connected and not trying: before `connect()`, after `disconnect()` or a final code. */
  Disconnected = 'disconnected',
  /** Opening a socket, waiting for `hello`, or waiting out the backoff before the next try. */
  Connecting = 'connecting',
  /** `hello` received; requests flow. */
  Connected = 'connected',
}

/** Codes of errors the client raises itself; server errors keep their `MINIPUSH_…` code. */
export const ClientErrorCode = {
  /** A request got no answer within its timeout. */
  Timeout: 'CLIENT_TIMEOUT',
  /** The socket closed before a request was answered, or the client is closed for good. */
  Disconnected: 'CLIENT_DISCONNECTED',
  /** A follower tab found no leader tab to carry its request. */
  NoLeader: 'CLIENT_NO_LEADER',
} as const;
