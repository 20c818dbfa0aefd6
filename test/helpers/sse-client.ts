import http from 'node:http';
import { EventStreamParser } from '../../src/client/event-stream.js';

export interface TestStream {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  /** The JSON body of a refusal (status other than 200), else null. */
  readonly body: any;
  /** Every event's parsed data, in order. */
  readonly messages: any[];
  /** Each event's last event id (as a reconnect would send it), by index of `messages`. */
  readonly ids: string[];
  /** `retry:` values received. */
  readonly retries: number[];
  /** Comment lines received (keep-alive pings). */
  readonly comments: string[];
  /** Resolves with the first message (from the start) matching `predicate` not yet taken. */
  next(predicate: (message: any) => boolean, timeoutMs?: number): Promise<any>;
  /** The id the stream last set (what `Last-Event-ID` would be on reconnect). */
  lastEventId(): string;
  /** Resolves when the server ended the stream (or the connection dropped). */
  readonly ended: Promise<void>;
  /** Stops reading (the connection stays open, the kernel buffers fill): a slow reader. */
  pause(): void;
  close(): Promise<void>;
}

/** Opens `GET <url>` as an event stream and collects its events. */
export function openStream(
  url: string,
  options: { token?: string; bearer?: string; headers?: Record<string, string> } = {},
): Promise<TestStream> {
  const target = new URL(url);
  if (options.token !== undefined) target.searchParams.set('token', options.token);
  const headers: Record<string, string> = { accept: 'text/event-stream', ...options.headers };
  if (options.bearer !== undefined) headers.authorization = `Bearer ${options.bearer}`;
  return new Promise((resolve, reject) => {
    const req = http.get(target, { headers, agent: false }, (res) => {
      const messages: any[] = [];
      const ids: string[] = [];
      const retries: number[] = [];
      const comments: string[] = [];
      const taken = new Set<number>();
      const waiters: Array<() => void> = [];
      let done = false;
      const wake = () => {
        for (const w of waiters.splice(0)) w();
      };
      const parser = new EventStreamParser({
        onEvent: (event) => {
          messages.push(JSON.parse(event.data));
          ids.push(event.lastEventId);
          wake();
        },
        onRetry: (ms) => retries.push(ms),
        onComment: (text) => comments.push(text),
      });
      const ended = new Promise<void>((resolveEnd) => {
        const end = () => {
          done = true;
          wake();
          resolveEnd();
        };
        res.on('end', end);
        res.on('close', end);
        res.on('error', end);
      });
      if (res.statusCode !== 200) {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {
            // Not JSON: the text.
          }
          resolve(stream(body));
        });
        return;
      }
      res.on('data', (chunk: Buffer) => parser.push(chunk));
      function stream(body: unknown): TestStream {
        return {
          status: res.statusCode!,
          headers: res.headers,
          body,
          messages,
          ids,
          retries,
          comments,
          ended,
          lastEventId: () => parser.lastEventId,
          next(predicate, timeoutMs = 10_000) {
            return new Promise((resolveNext, rejectNext) => {
              const deadline = setTimeout(() => {
                rejectNext(
                  new Error(
                    `no matching event within ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 2000)}`,
                  ),
                );
              }, timeoutMs);
              const check = () => {
                const index = messages.findIndex((m, i) => !taken.has(i) && predicate(m));
                if (index >= 0) {
                  taken.add(index);
                  clearTimeout(deadline);
                  resolveNext(messages[index]);
                } else if (done) {
                  clearTimeout(deadline);
                  rejectNext(
                    new Error(`stream ended; got ${JSON.stringify(messages).slice(0, 2000)}`),
                  );
                } else {
                  waiters.push(check);
                }
              };
              check();
            });
          },
          pause: () => res.pause(),
          async close() {
            req.destroy();
            await ended;
          },
        };
      }
      resolve(stream(null));
    });
    req.on('error', reject);
  });
}
