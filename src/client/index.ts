/**
 * `minipush/client`: the MiniPush client SDK for browsers and Node (docs/client.md). It imports
 * nothing from Node, so bundlers can take it as is.
 */
export {
  MiniPushClient,
  MiniPushClientError,
  type InboxClient,
  type MiniPushClientOptions,
  type Transport,
} from './client.js';
export {
  TabClient,
  type TabClientEvents,
  type TabClientOptions,
  type TabRole,
} from './tab-client.js';
export { ClientErrorCode, ConnectionState, DisconnectCode, shouldReconnect } from './codes.js';
export { backoffDelay } from './backoff.js';
export { matchesStatus } from './inbox.js';
export type {
  ArchivedChange,
  ClientEvents,
  DisconnectInfo,
  EventFlag,
  FeedStatus,
  FlagChange,
  InboxCounts,
  ListFilter,
  ReadChange,
  SeenChange,
} from './inbox.js';
export type { FeedEvent, HeadState, WebSocketConstructor, WebSocketLike } from './protocol.js';
export type { FetchLike } from './sse-connection.js';
export type {
  BroadcastChannelConstructor,
  BroadcastChannelLike,
  LockManagerLike,
} from './tab-leader.js';
