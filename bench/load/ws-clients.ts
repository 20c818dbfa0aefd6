/**
 * Holds many user sessions on a realtime server, as browsers would: one WebSocket each, from
 * given loopback source addresses, speaking MiniPush's protocol or Centrifugo's through a small
 * adapter (bench/lib/protocols.ts). Counts deliveries (MiniPush `head` nudges, Centrifugo
 * publications), and publishes to its own users — to time publish → delivery, and to drive
 * fan-out — by the way each command names.
 */
import WebSocket from 'ws';
import { reply, serve, type Message } from '../lib/child.js';
import { userToken } from '../lib/jwt.js';
import {
  PROTOCOLS,
  createPublisher,
  type ClientProtocol,
  type ProtocolName,
  type PublishVia,
  type Publisher,
} from '../lib/protocols.js';
import { percentiles, sleep, wallMs } from '../lib/stats.js';

interface Target {
  readonly url: string;
  readonly count: number;
  readonly firstUid: number;
  /** Sessions per user; uids are firstUid + i / sessionsPerUid. */
  readonly sessionsPerUid: number;
  readonly localAddresses: readonly string[];
}

interface Setup {
  readonly secret: string;
  /** The server's protocol; MiniPush's when not given. */
  readonly protocol?: ProtocolName;
  readonly targets: readonly Target[];
  readonly connectConcurrency: number;
}

interface Session {
  readonly uid: number;
  readonly ws: WebSocket;
  head: number;
}

let setup: Setup;
let protocol: ClientProtocol;
const sessions: Session[] = [];
let deliveries = 0;
let helloes = 0;
let closedUnexpectedly = 0;
/** Close codes of sessions the server closed, with their counts (why deliveries stopped). */
const closeCodes: Record<string, number> = {};
/** Publish time per uid and seq, for latency. */
const published = new Map<number, Map<number, number>>();
let latencies: number[] = [];
let tracking = false;
/** One publisher per way of publishing, made on first use and kept (heads keep growing). */
const publishers = new Map<string, Promise<Publisher>>();

function publisher(via: PublishVia): Promise<Publisher> {
  const key = JSON.stringify(via);
  let made = publishers.get(key);
  if (!made) publishers.set(key, (made = createPublisher(via)));
  return made;
}

function token(uid: number): string {
  return userToken(setup.secret, uid);
}

function open(url: string, uid: number, localAddress: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const jwt = token(uid);
    const ws = new WebSocket(protocol.url(url, jwt), {
      perMessageDeflate: false,
      ...(localAddress ? { localAddress } : {}),
    });
    const session: Session = { uid, ws, head: 0 };
    let settled = false;
    let up = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      reject(err);
    };
    const sink = {
      ready(head: number) {
        helloes++;
        session.head = head;
        sessions.push(session);
        settled = up = true;
        resolve();
      },
      delivered(seq: number | null) {
        deliveries++;
        if (seq === null) return;
        if (tracking) {
          const at = published.get(uid)?.get(seq);
          if (at !== undefined) latencies.push(wallMs() - at);
        }
        session.head = Math.max(session.head, seq);
      },
      refused: (reason: string) => fail(new Error(`refused: ${reason}`)),
    };
    const send = (frame: string) => ws.send(frame);
    ws.on('open', () => {
      const greeting = protocol.greeting(jwt);
      if (greeting !== null) ws.send(greeting);
    });
    ws.on('message', (data) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      const text = bytes.toString('utf8');
      protocol.read(text, tracking, sink, send);
    });
    ws.on('close', (code) => {
      if (up) {
        closedUnexpectedly++;
        closeCodes[code] = (closeCodes[code] ?? 0) + 1;
      } else fail(new Error(`closed (${code}) before the session was up`));
    });
    ws.on('error', fail);
  });
}

async function connectAll(): Promise<{ opened: number; failed: number; errors: string[] }> {
  const jobs: Array<{ url: string; uid: number; local: string | undefined }> = [];
  for (const target of setup.targets) {
    for (let i = 0; i < target.count; i++) {
      const local = target.localAddresses[i % Math.max(1, target.localAddresses.length)];
      jobs.push({
        url: target.url,
        uid: target.firstUid + Math.floor(i / target.sessionsPerUid),
        local,
      });
    }
  }
  let next = 0;
  let failed = 0;
  const errors: string[] = [];
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      try {
        await open(job.url, job.uid, job.local);
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(err instanceof Error ? err.message : String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: setup.connectConcurrency }, worker));
  return { opened: sessions.length, failed, errors };
}

function connectedUids(): number[] {
  return [...new Set(sessions.map((s) => s.uid))];
}

/** Publishes `rate` events/s, one recipient each, round-robin over the connected users. */
async function publishForLatency(via: PublishVia, rate: number, seconds: number): Promise<number> {
  const out = await publisher(via);
  const uids = connectedUids();
  const heads = new Map(sessions.map((s) => [s.uid, s.head]));
  const tickMs = 2;
  const started = wallMs();
  let sent = 0;
  let cursor = 0;
  tracking = true;
  while (wallMs() - started < seconds * 1000) {
    const due = Math.floor(((wallMs() - started) / 1000) * rate);
    if (due > sent) {
      const items = [];
      const now = wallMs();
      for (; sent < due; sent++) {
        const uid = uids[cursor++ % uids.length]!;
        const seq = (heads.get(uid) ?? 0) + 1;
        heads.set(uid, seq);
        let times = published.get(uid);
        if (!times) published.set(uid, (times = new Map()));
        times.set(seq, now);
        items.push({ uid, seq });
      }
      await out.each(items);
    }
    await sleep(tickMs);
  }
  return sent;
}

/** Fan-out: `rate` rounds per second, each one event (or head change) to every connected user. */
async function publishToAll(via: PublishVia, rate: number, seconds: number): Promise<number> {
  const out = await publisher(via);
  const uids = connectedUids();
  const started = wallMs();
  let sent = 0;
  while (wallMs() - started < seconds * 1000) {
    const due = Math.floor(((wallMs() - started) / 1000) * rate);
    // One round at a time, so a server that falls behind never has the window overrun by a
    // backlog of rounds sent after it should have closed.
    if (due > sent) await out.round(uids, sent++);
    else await sleep(5);
  }
  return sent;
}

async function publishErrors(): Promise<number> {
  const all = await Promise.all(publishers.values());
  return all.reduce((sum, p) => sum + p.errors(), 0);
}

serve(async (message: Message) => {
  switch (message.type) {
    case 'setup':
      setup = message.setup as Setup;
      protocol = PROTOCOLS[setup.protocol ?? 'minipush'];
      reply({ type: 'ready' });
      break;
    case 'connect': {
      const started = wallMs();
      const result = await connectAll();
      reply({ type: 'connected', ...result, seconds: (wallMs() - started) / 1000 });
      break;
    }
    case 'count':
      reply({
        type: 'counts',
        deliveries,
        helloes,
        sessions: sessions.length,
        closedUnexpectedly,
        closeCodes,
        publishErrors: await publishErrors(),
      });
      break;
    case 'latency': {
      latencies = [];
      const via = message.via as PublishVia;
      const sent = await publishForLatency(via, Number(message.rate), Number(message.seconds));
      await sleep(Number(message.settleMs ?? 2000));
      tracking = false;
      const samples = latencies;
      const stats = percentiles(samples, [50, 90, 99, 99.9, 100]);
      reply({ type: 'latency', sent, received: samples.length, ...stats });
      break;
    }
    case 'fanout': {
      const via = message.via as PublishVia;
      const sent = await publishToAll(via, Number(message.rate), Number(message.seconds));
      reply({ type: 'fanout', sent });
      break;
    }
    case 'close':
      for (const session of sessions) session.ws.terminate();
      for (const made of publishers.values()) await (await made).close();
      reply({ type: 'closed' });
      break;
    default:
      throw new Error(`unknown command ${message.type}`);
  }
});
