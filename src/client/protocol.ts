/**
 * The wire shapes the client reads and writes, from the protocol module the hub shares (types
 * and constants only, so `minipush/client` carries no server or Node code into a browser
 * bundle), and the minimal WebSocket surface the client needs.
 */

export type {
  Answers,
  FeedEvent,
  FeedPage,
  HeadState,
  HelloMessage,
  InboxStateName,
  ReadBlock,
  RequestType,
  StatusFilter,
} from '../protocol/websocket.js';
export { SUBPROTOCOL } from '../protocol/websocket.js';

/** The parts of a WebSocket the client uses; the browser's and the `ws` package's both fit. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: never) => void) | null;
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null;
  onerror: ((event: never) => void) | null;
}

/** A WebSocket constructor: `globalThis.WebSocket`, or `WebSocket` from the `ws` package. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => object;

/** `readyState` of an open WebSocket (the same number everywhere). */
export const OPEN = 1;
