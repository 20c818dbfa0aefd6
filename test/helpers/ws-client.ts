import { randomBytes } from 'node:crypto';
import net from 'node:net';
import WebSocket from 'ws';

export interface TestSocket {
  readonly ws: WebSocket;
  /** Every message received, in order. */
  readonly messages: any[];
  /** Resolves with the first message (from the start) matching `predicate` not yet taken. */
  next(predicate: (message: any) => boolean, timeoutMs?: number): Promise<any>;
  /** Sends a request with a fresh reqId and resolves with its answer (or error). */
  request(type: string, fields?: Record<string, unknown>, timeoutMs?: number): Promise<any>;
  send(message: unknown): void;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

let reqCounter = 0;

/** Opens a WebSocket and collects its messages; rejects if the upgrade is refused. */
export function connect(
  url: string,
  options: {
    token?: string;
    protocols?: string[];
    headers?: Record<string, string>;
    localAddress?: string;
    /** False makes a client that never answers pings. */
    autoPong?: boolean;
    /** For wss:// to a server with a self-signed certificate. */
    rejectUnauthorized?: boolean;
  } = {},
): Promise<TestSocket> {
  const target =
    options.token === undefined
      ? url
      : `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(options.token)}`;
  const ws = new WebSocket(target, options.protocols ?? [], {
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    ...(options.autoPong === false ? { autoPong: false } : {}),
    ...(options.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
  });
  const messages: any[] = [];
  const taken = new Set<number>();
  const waiters: Array<() => void> = [];
  ws.on('message', (data, isBinary) => {
    const bytes = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    messages.push(isBinary ? bytes : JSON.parse(bytes.toString('utf8')));
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      resolve({ code, reason: reason.toString() });
      for (const wake of waiters.splice(0)) wake();
    });
  });
  const socket: TestSocket = {
    ws,
    messages,
    next(predicate, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const deadline = setTimeout(() => {
          reject(
            new Error(
              `no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages).slice(0, 2000)}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const index = messages.findIndex((m, i) => !taken.has(i) && predicate(m));
          if (index >= 0) {
            taken.add(index);
            clearTimeout(deadline);
            resolve(messages[index]);
          } else if (ws.readyState === WebSocket.CLOSED) {
            clearTimeout(deadline);
            reject(
              new Error(
                `socket closed while waiting; got ${JSON.stringify(messages).slice(0, 2000)}`,
              ),
            );
          } else {
            waiters.push(check);
          }
        };
        check();
      });
    },
    request(type, fields = {}, timeoutMs = 15_000) {
      const reqId = `r${++reqCounter}`;
      ws.send(JSON.stringify({ type, reqId, ...fields }));
      return socket.next((m) => m.reqId === reqId, timeoutMs);
    },
    send(message) {
      ws.send(typeof message === 'string' ? message : JSON.stringify(message));
    },
    closed,
    async close() {
      if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) ws.close();
      await closed;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(socket));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () =>
        reject(
          Object.assign(new Error(`upgrade refused: ${res.statusCode} ${body}`), {
            status: res.statusCode,
            body,
          }),
        ),
      );
    });
    ws.once('error', (err) => reject(err));
  });
}

/** A masked client text frame (RFC 6455 §5.2), for writing frames by hand. */
function clientTextFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const length =
    payload.length < 126
      ? Buffer.from([0x80 | payload.length])
      : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81]), length, mask, masked]);
}

/**
 * Sends the upgrade request and `frames` in one write, so the server has the frames before it
 * has even checked the token, and collects the text messages it answers with.
 */
export function upgradeWithFrames(
  url: string,
  frames: readonly string[],
): { messages: any[]; close(): void } {
  const target = new URL(url);
  const socket = net.connect(Number(target.port), target.hostname);
  const key = randomBytes(16).toString('base64');
  socket.write(
    Buffer.concat([
      Buffer.from(
        `GET ${target.pathname}${target.search} HTTP/1.1\r\nHost: ${target.host}\r\n` +
          `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\n` +
          'Sec-WebSocket-Version: 13\r\n\r\n',
      ),
      ...frames.map(clientTextFrame),
    ]),
  );
  const messages: any[] = [];
  let buffer = Buffer.alloc(0);
  let upgraded = false;
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    if (!upgraded) {
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      buffer = buffer.subarray(end + 4);
      upgraded = true;
    }
    // Unmasked server frames; a text message fits one frame here.
    for (;;) {
      if (buffer.length < 2) return;
      let length = buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffer.length < 4) return;
        length = buffer.readUInt16BE(2);
        offset = 4;
      }
      if (buffer.length < offset + length) return;
      if ((buffer[0]! & 0x0f) === 1)
        messages.push(JSON.parse(buffer.subarray(offset, offset + length).toString('utf8')));
      buffer = buffer.subarray(offset + length);
    }
  });
  socket.on('error', () => undefined);
  return { messages, close: () => socket.destroy() };
}
