/**
 * The Server-Sent Events transport (docs/sse.md) as both ends see it: the stream at `/v1/sse`
 * carries the WebSocket's JSON messages, one per SSE event, and `hello`/`head` events carry an
 * id naming the head state they tell, which a reconnecting client sends back as
 * `Last-Event-ID`. Types, constants and pure functions only: the client bundles this file.
 */

/** The path of the stream, next to `/v1/ws`. */
export const SSE_PATH = '/v1/sse';

/** Where a stream's last `hello` or `head` left the client: the fields its event id encodes. */
export interface ResumePoint {
  readonly headSeq: number;
  readonly readVersion: number;
}

/**
 * The SSE stand-in for a WebSocket close frame: the last event of a stream the server ends, with
 * the close code a WebSocket session would get (`CLOSE_CODES`; 4500–4999: do not reconnect).
 */
export interface SseCloseMessage {
  readonly type: 'close';
  readonly code: number;
  readonly reason: string;
}

/** The id of an event telling `state`: `<headSeq>-<readVersion>`, e.g. `13-7`. */
export function formatEventId(state: ResumePoint): string {
  return `${state.headSeq}-${state.readVersion}`;
}

const EVENT_ID = /^(\d{1,10})-(\d{1,15})$/;

/** The resume point a `Last-Event-ID` names, or null for one this server did not make. */
export function parseEventId(id: string | undefined | null): ResumePoint | null {
  if (typeof id !== 'string') return null;
  const match = EVENT_ID.exec(id.trim());
  if (!match) return null;
  const headSeq = Number(match[1]);
  const readVersion = Number(match[2]);
  if (headSeq > 0xffff_ffff || !Number.isSafeInteger(readVersion)) return null;
  return { headSeq, readVersion };
}

/**
 * How a stream's hello compares with the `Last-Event-ID` it was opened with:
 * - `fresh`: no (usable) id: a first connect;
 * - `unchanged`: the hello tells the same head and read version: nothing happened meanwhile;
 * - `behind`: the id is older in head or read version: the client diffs what it missed;
 * - `ahead`: the id names more than the store holds, which no hub of this read model told (it
 *   was rebuilt into a new database, or the id is made up): the stream starts over, and the
 *   client, told a lower head than it had, drops its cache as after any server reset.
 */
export type ResumeResult = 'fresh' | 'unchanged' | 'behind' | 'ahead';

export function compareResume(current: ResumePoint, resume: ResumePoint | null): ResumeResult {
  if (!resume) return 'fresh';
  if (resume.headSeq > current.headSeq || resume.readVersion > current.readVersion) return 'ahead';
  if (resume.headSeq === current.headSeq && resume.readVersion === current.readVersion)
    return 'unchanged';
  return 'behind';
}
