/**
 * Holds many user sessions on MiniPush hubs, as browsers would: one WebSocket each, JWT in the
 * query string, from given loopback source addresses. Counts `head` nudges, and can publish to
 * its own users (Kafka producer) to time publish → nudge.
 */
import { createHmac } from 'node:crypto';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import WebSocket from 'ws';
import { encodeHeadChange } from '../../src/log/log.js';
import { createCommandProducer, type CommandProducer } from '../../src/commands/producer.js';
import { reply, serve, type Message } from '../lib/child.js';
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
  readonly targets: readonly Target[];
  readonly connectConcurrency: number;
  readonly brokers?: string;
  readonly topicPrefix?: string;
}

interface Session {
  readonly uid: number;
  readonly ws: WebSocket;
  head: number;
}

let setup: Setup;
const sessions: Session[] = [];
let nudges = 0;
let helloes = 0;
let closedUnexpectedly = 0;
let producer: CommandProducer | null = null;
/** Publish time per uid and seq, for latency. */
const published = new Map<number, Map<number, number>>();
let latencies: number[] = [];
let tracking = false;

const HEAD_PREFIX = Buffer.from('{"type":"head"');

function base64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

function token(uid: number): string {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const now = Math.floor(Date.now() / 1000);
  const payload = base64url(JSON.stringify({ sub: String(uid), iat: now, exp: now + 7200 }));
  const signature = createHmac('sha256', setup.secret).update(`${header}.${payload}`).digest();
  return `${header}.${payload}.${base64url(signature)}`;
}

function open(url: string, uid: number, localAddress: string | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url}?token=${token(uid)}`, {
      perMessageDeflate: false,
      ...(localAddress ? { localAddress } : {}),
    });
    const session: Session = { uid, ws, head: 0 };
    let settled = false;
    ws.on('message', (data) => {
      const bytes = Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.isBuffer(data)
          ? data
          : Buffer.from(data);
      // Counting nudges needs no copy, no decode and no parse: the hub writes head messages type
      // first. The load process shares the box's cores with the hub it measures.
      if (
        !tracking &&
        bytes.length >= HEAD_PREFIX.length &&
        bytes.compare(HEAD_PREFIX, 0, HEAD_PREFIX.length, 0, HEAD_PREFIX.length) === 0
      ) {
        nudges++;
        return;
      }
      const message = JSON.parse(bytes.toString('utf8')) as { type: string; headSeq?: number };
      if (message.type === 'head') {
        nudges++;
        const head = message.headSeq ?? 0;
        if (tracking) {
          const at = published.get(uid)?.get(head);
          if (at !== undefined) latencies.push(wallMs() - at);
        }
        session.head = Math.max(session.head, head);
      } else if (message.type === 'hello') {
        helloes++;
        session.head = message.headSeq ?? 0;
        sessions.push(session);
        settled = true;
        resolve();
      }
    });
    ws.on('close', () => {
      if (settled) closedUnexpectedly++;
      else {
        settled = true;
        reject(new Error('closed before hello'));
      }
    });
    ws.on('error', (err) => {
      if (!settled) {
        settled = true;
        reject(err);
      }
    });
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

/** Publishes `rate` events/s, one recipient each, round-robin over the connected users. */
async function publishForLatency(rate: number, seconds: number): Promise<number> {
  const uids = [...new Set(sessions.map((s) => s.uid))];
  const heads = new Map(sessions.map((s) => [s.uid, s.head]));
  const tickMs = 2;
  const started = wallMs();
  let sent = 0;
  let cursor = 0;
  tracking = true;
  while (wallMs() - started < seconds * 1000) {
    const due = Math.floor(((wallMs() - started) / 1000) * rate);
    if (due > sent) {
      const inputs = [];
      const now = wallMs();
      for (; sent < due; sent++) {
        const uid = uids[cursor++ % uids.length]!;
        const seq = (heads.get(uid) ?? 0) + 1;
        heads.set(uid, seq);
        let times = published.get(uid);
        if (!times) published.set(uid, (times = new Map()));
        times.set(seq, now);
        inputs.push({ to: [uid], body: { n: sent } });
      }
      await producer!.publishMany(inputs);
    }
    await sleep(tickMs);
  }
  return sent;
}

/**
 * Plays the projector: produces head changes for every connected user straight to the heads
 * topic, `rate` rounds per second, so the hub's own fan-out is measured.
 */
async function produceHeads(rate: number, seconds: number, topic: string): Promise<number> {
  const uids = [...new Set(sessions.map((s) => s.uid))];
  const kafka = new Kafka({
    clientId: 'minipush-bench-heads',
    brokers: setup.brokers!.split(','),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const started = wallMs();
  let rounds = 0;
  try {
    while (wallMs() - started < seconds * 1000) {
      const due = Math.floor(((wallMs() - started) / 1000) * rate);
      // A producer that fell behind (the box busy) never runs past the window to catch up.
      for (; rounds < due && wallMs() - started < seconds * 1000; rounds++) {
        const headSeq = 1_000_000 + rounds;
        await producer.send({
          topic,
          acks: 1,
          messages: uids.map((uid) => ({
            key: String(uid),
            value: encodeHeadChange({
              uid,
              headSeq,
              floorSeq: 1,
              unreadCount: headSeq,
              readVersion: 0,
              logTime: Date.now(),
            }),
          })),
        });
      }
      await sleep(5);
    }
  } finally {
    await producer.disconnect();
  }
  return rounds;
}

/** Publishes events to all connected users, `rate` per second, for fan-out. */
async function publishToAll(rate: number, seconds: number): Promise<number> {
  const uids = [...new Set(sessions.map((s) => s.uid))];
  const started = wallMs();
  let sent = 0;
  while (wallMs() - started < seconds * 1000) {
    const due = Math.floor(((wallMs() - started) / 1000) * rate);
    if (due > sent) {
      const inputs = [];
      for (; sent < due; sent++) inputs.push({ to: uids, body: { n: sent } });
      await producer!.publishMany(inputs);
    }
    await sleep(5);
  }
  return sent;
}

serve(async (message: Message) => {
  switch (message.type) {
    case 'setup':
      setup = message.setup as Setup;
      if (setup.brokers) {
        producer = await createCommandProducer({
          brokers: setup.brokers.split(','),
          topicPrefix: setup.topicPrefix!,
          clientId: 'minipush-bench-ws',
          limits: { maxRecipients: 100_000 },
        });
      }
      reply({ type: 'ready' });
      break;
    case 'connect': {
      const started = wallMs();
      const result = await connectAll();
      reply({ type: 'connected', ...result, seconds: (wallMs() - started) / 1000 });
      break;
    }
    case 'count':
      reply({ type: 'counts', nudges, helloes, sessions: sessions.length, closedUnexpectedly });
      break;
    case 'latency': {
      latencies = [];
      const sent = await publishForLatency(Number(message.rate), Number(message.seconds));
      await sleep(Number(message.settleMs ?? 2000));
      tracking = false;
      const samples = latencies;
      const stats = percentiles(samples, [50, 90, 99, 99.9, 100]);
      reply({ type: 'latency', sent, received: samples.length, ...stats });
      break;
    }
    case 'fanout': {
      const sent = await publishToAll(Number(message.rate), Number(message.seconds));
      reply({ type: 'fanout', sent });
      break;
    }
    case 'heads': {
      const rounds = await produceHeads(
        Number(message.rate),
        Number(message.seconds),
        String(message.topic),
      );
      reply({ type: 'heads', rounds });
      break;
    }
    case 'close':
      for (const session of sessions) session.ws.terminate();
      await producer?.close();
      reply({ type: 'closed' });
      break;
    default:
      throw new Error(`unknown command ${message.type}`);
  }
});
