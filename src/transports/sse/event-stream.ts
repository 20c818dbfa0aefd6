import { formatEventId } from '../../protocol/sse.js';

/**
 * The wire format of the SSE stream (the WHATWG HTML "server-sent events" section): one event
 * per hub message, `data:` the message's JSON, and for `hello` and `head` an `id:` naming the
 * head state it tells. Events carry no `event:` name: as over the WebSocket, each message's
 * `type` says what it is, so one `onmessage` handler reads them all.
 */

const DATA = Buffer.from('data: ');
const END = Buffer.from('\n\n');

/** The id of a hello or head message: the head state it tells; null for other messages. */
function eventId(json: Buffer): string | null {
  let message: unknown;
  try {
    message = JSON.parse(json.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof message !== 'object' || message === null) return null;
  const { type, headSeq, readVersion } = message as Record<string, unknown>;
  if (type !== 'hello' && type !== 'head') return null;
  if (typeof headSeq !== 'number' || typeof readVersion !== 'number') return null;
  return formatEventId({ headSeq, readVersion });
}

/**
 * One message as an SSE event. JSON text has no raw line breaks, but a message that had one
 * would still arrive whole: each line becomes its own `data:` line, which readers join with
 * newlines.
 */
export function sseEvent(json: Buffer): Buffer {
  const id = eventId(json);
  const parts: Buffer[] = [];
  if (id !== null) parts.push(Buffer.from(`id: ${id}\n`));
  if (json.includes(0x0a) || json.includes(0x0d)) {
    for (const line of json.toString('utf8').split(/\r\n|\r|\n/)) {
      parts.push(DATA, Buffer.from(line), Buffer.from('\n'));
    }
    parts.push(Buffer.from('\n'));
  } else {
    parts.push(DATA, json, END);
  }
  return Buffer.concat(parts);
}

/** A comment line: ignored by readers, it keeps proxies and the connection from idling out. */
export const PING = Buffer.from(': ping\n\n');

/** The `retry:` field: how long a browser's EventSource waits before it reconnects, in ms. */
export function retryField(ms: number): Buffer {
  return Buffer.from(`retry: ${Math.max(0, Math.round(ms))}\n\n`);
}
