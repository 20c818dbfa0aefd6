/**
 * A reader of `text/event-stream` (the WHATWG HTML "server-sent events" parsing rules), for
 * runtimes without `EventSource` (Node 20) and for reading a stream from `fetch`, where a header
 * such as `Authorization` can be sent. No dependency: the format is a few rules on lines.
 */

/** One dispatched event. */
export interface StreamEvent {
  /** The `event:` name; `message` when none was given. */
  readonly type: string;
  /** The `data:` lines, joined with newlines. */
  readonly data: string;
  /** The last event id as of this event (an event without `id:` keeps the one before). */
  readonly lastEventId: string;
}

export interface EventStreamHandlers {
  onEvent(event: StreamEvent): void;
  /** A `retry:` field: the reconnection delay the server asks for, in ms. */
  onRetry?(ms: number): void;
  /** A comment line (`: ping`), without its colon. */
  onComment?(text: string): void;
}

/** Feeds chunks of a stream in, calls the handlers as whole events arrive. */
export class EventStreamParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  private data = '';
  private hasData = false;
  private eventType = '';
  /** The last event id; it persists across events, and a reconnect sends it back. */
  lastEventId: string;
  private pendingId: string;
  private first = true;
  /** A chunk ended in CR: an LF at the start of the next one belongs to the same line end. */
  private skipLf = false;

  constructor(
    private readonly handlers: EventStreamHandlers,
    lastEventId = '',
  ) {
    this.lastEventId = lastEventId;
    this.pendingId = lastEventId;
  }

  /** Bytes (decoded as UTF-8 across chunk borders) or text. */
  push(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.first && text.length > 0) {
      this.first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.skipLf && text.startsWith('\n')) text = text.slice(1);
    this.skipLf = false;
    this.buffer += text;
    let start = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = start; i < this.buffer.length; i++) {
        const c = this.buffer.charCodeAt(i);
        if (c === 0x0a) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 0x0d) {
          end = i;
          if (i + 1 < this.buffer.length)
            next = this.buffer.charCodeAt(i + 1) === 0x0a ? i + 2 : i + 1;
          else {
            next = i + 1;
            this.skipLf = true;
          }
          break;
        }
      }
      if (end < 0) break;
      this.line(this.buffer.slice(start, end));
      start = next;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) {
      this.handlers.onComment?.(line.slice(1).trimStart());
      return;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        this.data += this.hasData ? `\n${value}` : value;
        this.hasData = true;
        break;
      case 'event':
        this.eventType = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.pendingId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
  }

  private dispatch(): void {
    this.lastEventId = this.pendingId;
    const { hasData, data, eventType } = this;
    this.data = '';
    this.hasData = false;
    this.eventType = '';
    if (!hasData) return;
    this.handlers.onEvent({
      type: eventType === '' ? 'message' : eventType,
      data,
      lastEventId: this.lastEventId,
    });
  }
}
