import { DisconnectCode } from './codes.js';
import { EventStreamParser } from './event-stream.js';
import { OPEN, type WebSocketLike } from './protocol.js';
import { readClaims } from './token.js';

/** `fetch` as the SSE connection uses it: the global one in browsers and Node 18+. */
export type FetchLike = (
  url: string,
  init: {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    signal?: AbortSignal;
    cache?: 'no-store';
  },
) => Promise<{
  readonly ok: boolean;
  readonly status: number;
  readonly body: { getReader(): { read(): Promise<{ done: boolean; value?: Uint8Array }> } } | null;
  json(): Promise<unknown>;
  text(): Promise<string>;
}>;

export interface SseConnectionOptions {
  /** Base URL of the hub's HTTP port, e.g. `https://push.example.com` (no trailing slash). */
  readonly baseUrl: string;
  readonly token: string;
  /** The id the last stream ended on, sent as `Last-Event-ID`; '' for none. */
  readonly lastEventId: string;
  readonly fetch: FetchLike;
  /** Told every id a stream sets, so the next connection resumes from it. */
  readonly onEventId: (id: string) => void;
}

const CONNECTING = 0;
const CLOSED = 3;

/** Without a byte (event or keep-alive comment) for this many ping intervals, the stream is dead. */
const SILENT_INTERVALS = 2.5;

interface ErrorBody {
  error?: { code?: unknown; message?: unknown };
}

/**
 * The client's one connection over Server-Sent Events, shaped like a WebSocket so the client
 * drives both transports alike: the server's messages arrive on `onmessage` from `/v1/sse`,
 * and requests given to `send` are made over REST and answered on `onmessage` as the WebSocket
 * would answer them (same `type`, `reqId` and fields). The stream's end is reported on
 * `onclose` with the code of its `close` event, or 1006 when it just stopped.
 */
export class SseConnection implements WebSocketLike {
  readyState = CONNECTING;
  onopen: ((event: never) => void) | null = null;
  onmessage: ((event: { readonly data: unknown }) => void) | null = null;
  onclose: ((event: { readonly code: number; readonly reason: string }) => void) | null = null;
  onerror: ((event: never) => void) | null = null;

  private token: string;
  private readonly uid: string | undefined;
  private abort = new AbortController();
  private lastEventId: string;
  private lastByteAt = Date.now();
  private watchdog: ReturnType<typeof setInterval> | null = null;
  /** A `refresh` waiting for the hello of the stream reopened on its token. */
  private refreshing: { reqId: unknown } | null = null;

  constructor(private readonly options: SseConnectionOptions) {
    this.token = options.token;
    this.uid = readClaims(options.token).sub;
    this.lastEventId = options.lastEventId;
    void this.stream();
  }

  send(data: string): void {
    let request: Record<string, unknown>;
    try {
      request = JSON.parse(data) as Record<string, unknown>;
    } catch {
      return;
    }
    void this.answer(request);
  }

  close(code: number = DisconnectCode.Normal, reason = ''): void {
    void code;
    void reason;
    this.finish(null);
  }

  // ----------------------------------------------------------------- the stream

  private async stream(): Promise<void> {
    const abort = this.abort;
    const headers: Record<string, string> = {
      accept: 'text/event-stream',
      authorization: `Bearer ${this.token}`,
    };
    if (this.lastEventId !== '') headers['last-event-id'] = this.lastEventId;
    let closeEvent: { code: number; reason: string } | null = null;
    try {
      const res = await this.options.fetch(`${this.options.baseUrl}/v1/sse`, {
        headers,
        signal: abort.signal,
        cache: 'no-store',
      });
      if (abort.signal.aborted) return;
      if (!res.ok || res.body === null) {
        this.finish(await refusal(res));
        return;
      }
      const parser = new EventStreamParser(
        {
          onEvent: (event) => {
            if (event.lastEventId !== this.lastEventId) {
              this.lastEventId = event.lastEventId;
              this.options.onEventId(event.lastEventId);
            }
            const message = parse(event.data);
            if (message?.type === 'close') {
              closeEvent = {
                code: typeof message.code === 'number' ? message.code : DisconnectCode.Abnormal,
                reason: typeof message.reason === 'string' ? message.reason : '',
              };
              return;
            }
            if (message?.type === 'hello') this.opened(message);
            this.deliver(event.data, message);
          },
        },
        this.lastEventId,
      );
      const reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done || abort.signal.aborted) break;
        this.lastByteAt = Date.now();
        if (value) parser.push(value);
      }
    } catch {
      // A network failure or our own abort: the stream ended without a close event.
    }
    if (abort === this.abort && !abort.signal.aborted) {
      this.finish(closeEvent ?? { code: DisconnectCode.Abnormal, reason: 'the stream ended' });
    }
  }

  private opened(hello: Record<string, unknown>): void {
    this.readyState = OPEN;
    const limits = hello.limits as { pingIntervalMs?: unknown } | undefined;
    const every = typeof limits?.pingIntervalMs === 'number' ? limits.pingIntervalMs : 25_000;
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = setInterval(
      () => {
        if (Date.now() - this.lastByteAt > every * SILENT_INTERVALS) {
          this.finish({ code: DisconnectCode.NoPong, reason: 'no keep-alive from the server' });
        }
      },
      Math.max(10, every / 2),
    );
  }

  /** Hands a server message to the client; the hello of a stream reopened by `refresh` answers it. */
  private deliver(data: string, message: Record<string, unknown> | null): void {
    if (message?.type === 'hello' && this.refreshing) {
      const { reqId } = this.refreshing;
      this.refreshing = null;
      // The client is greeted once per connection: the new stream's state arrives as a nudge.
      this.emit({ ...message, type: 'head' });
      this.emit({ type: 'refresh', reqId, tokenExpiresAt: message.tokenExpiresAt ?? null });
      return;
    }
    this.onmessage?.({ data });
  }

  private emit(message: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  /** Ends for good: reports `close` (unless the client closed it) and stops everything. */
  private finish(close: { code: number; reason: string } | null): void {
    if (this.readyState === CLOSED) return;
    this.readyState = CLOSED;
    this.abort.abort();
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = null;
    if (close) this.onclose?.(close);
  }

  // ----------------------------------------------------------------- requests over REST

  private async answer(request: Record<string, unknown>): Promise<void> {
    const { type, reqId } = request;
    const fail = (code: string, message: string) =>
      this.emit({ type: 'error', reqId: reqId ?? null, code, message });
    if (type === 'ping') {
      this.emit({ type: 'pong', reqId });
      return;
    }
    if (type === 'refresh') {
      this.reopen(request);
      return;
    }
    if (this.uid === undefined) {
      fail('MINIPUSH_UNAUTHENTICATED', 'the token has no sub: requests need the uid');
      return;
    }
    const user = `${this.options.baseUrl}/v1/users/${encodeURIComponent(this.uid)}`;
    const query = (fields: Record<string, unknown>) => {
      const params = new URLSearchParams();
      for (const [key, value] of Object.entries(fields)) {
        // Request fields in a query are numbers and strings; anything else is left out.
        if (typeof value === 'number' || typeof value === 'string') params.set(key, String(value));
      }
      const text = params.toString();
      return text === '' ? '' : `?${text}`;
    };
    const wait = request.wait === false ? '' : '?wait=true';
    let call: { url: string; body?: unknown };
    switch (type) {
      case 'diff':
        call = {
          url: `${user}/events${query({ after: request.after ?? 0, limit: request.limit })}`,
        };
        break;
      case 'fetch':
        call = {
          url: `${user}/events${query({
            from: request.from,
            to: request.to,
            order: request.order,
            limit: request.limit,
          })}`,
        };
        break;
      case 'stats':
        call = { url: `${user}/stats` };
        break;
      case 'readStates':
        call = {
          url: `${user}/read-states${query({ upTo: request.upTo, format: request.format })}`,
        };
        break;
      case 'markRead':
        call = {
          url: `${user}/read${wait}`,
          body: request.seqs !== undefined ? { seqs: request.seqs } : { upTo: request.upTo },
        };
        break;
      case 'markUnread':
        call = { url: `${user}/unread${wait}`, body: { seqs: request.seqs } };
        break;
      default:
        fail(
          'MINIPUSH_BAD_REQUEST',
          `${String(type)} is not available over SSE; use the WebSocket`,
        );
        return;
    }
    try {
      const res = await this.options.fetch(call.url, {
        method: call.body === undefined ? 'GET' : 'POST',
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(call.body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) }),
      });
      const body = (await res.json().catch(() => null)) as Record<string, unknown> | null;
      if (!res.ok) {
        const error = (body as ErrorBody | null)?.error;
        fail(
          typeof error?.code === 'string' ? error.code : 'MINIPUSH_INTERNAL',
          typeof error?.message === 'string' ? error.message : `HTTP ${res.status}`,
        );
        return;
      }
      this.emit({ ...body, type, reqId });
    } catch (err) {
      fail('MINIPUSH_UNAVAILABLE', err instanceof Error ? err.message : String(err));
    }
  }

  /**
   * A new token: the stream is opened again on it (a session lives no longer than its token,
   * and SSE cannot hand the open one a new token), resuming from the last id; its hello
   * answers the refresh. REST calls use the new token from now on.
   */
  private reopen(request: Record<string, unknown>): void {
    const token = request.token;
    if (typeof token !== 'string' || readClaims(token).sub !== this.uid) {
      this.emit({
        type: 'error',
        reqId: request.reqId ?? null,
        code: 'MINIPUSH_FORBIDDEN',
        message: 'a refresh needs a token for the same user',
      });
      return;
    }
    this.token = token;
    this.refreshing = { reqId: request.reqId };
    this.abort.abort();
    this.abort = new AbortController();
    void this.stream();
  }
}

function parse(data: string): Record<string, unknown> | null {
  try {
    const message = JSON.parse(data) as unknown;
    return typeof message === 'object' && message !== null
      ? (message as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/** What a refused stream means for the client, as the WebSocket's close code would say it. */
async function refusal(
  res: Awaited<ReturnType<FetchLike>>,
): Promise<{ code: number; reason: string }> {
  let reason = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as ErrorBody;
    if (typeof body.error?.code === 'string') reason = body.error.code;
  } catch {
    // Not our JSON (a proxy's page): the status says enough.
  }
  if (res.status === 401) return { code: DisconnectCode.Unauthenticated, reason };
  if (res.status === 403) return { code: DisconnectCode.Forbidden, reason };
  return { code: DisconnectCode.Abnormal, reason };
}
