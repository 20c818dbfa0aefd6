/**
 * The two halves of a realtime server's protocol that the WebSocket load program needs, one
 * small adapter per system: how a client session connects and reads what it is sent
 * (`ClientProtocol`), and how a business server publishes to users (`Publisher`). MiniPush's
 * sessions are told `{"type":"head","headSeq":N}`; Centrifugo's get each publication on the
 * user's personal channel. Either way the load program counts deliveries and, for latency,
 * reads the seq the publisher attached.
 */
import http from 'node:http';
import { Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import { createCommandProducer, type CommandProducer } from '../../src/commands/producer.js';
import type { HeadChange } from '../../src/domain/head-state.js';
import { encodeHeadChange, headChangesRecords } from '../../src/log/log.js';
import { postJson } from './http.js';

/** What a session's protocol tells the load program. */
export interface SessionSink {
  /** The session is up; `head` is the user's current seq (0 where the server keeps none). */
  ready(head: number): void;
  /** One delivery: its seq when the frame was parsed, null when it was only counted. */
  delivered(seq: number | null): void;
  /** The server refused the session (an error reply before it was up). */
  refused(reason: string): void;
}

/** How a client of one system connects and reads its frames. */
export interface ClientProtocol {
  /** The WebSocket URL of a session of the user holding `token`. */
  url(base: string, token: string): string;
  /** The first frame the client sends once the socket is open, if the protocol has one. */
  greeting(token: string): string | null;
  /**
   * Reads one text frame. `parse` false lets a delivery be counted without JSON parsing (the
   * fan-out hot path); `send` answers the server (Centrifugo's pings).
   */
  read(text: string, parse: boolean, sink: SessionSink, send: (frame: string) => void): void;
}

export type ProtocolName = 'minipush' | 'centrifugo';

const minipush: ClientProtocol = {
  url: (base, token) => `${base}?token=${token}`,
  greeting: () => null,
  read(text, parse, sink) {
    // The hub writes head messages type first, so counting one needs no parse.
    if (!parse && text.startsWith('{"type":"head"')) return sink.delivered(null);
    const message = JSON.parse(text) as { type: string; headSeq?: number; code?: string };
    if (message.type === 'head') sink.delivered(message.headSeq ?? 0);
    else if (message.type === 'hello') sink.ready(message.headSeq ?? 0);
    else if (message.type === 'error') sink.refused(message.code ?? 'error');
  },
};

interface CentrifugoReply {
  id?: number;
  connect?: unknown;
  error?: { code: number; message: string };
  push?: { pub?: { data?: { n?: number } } };
}

/** Centrifugo's JSON protocol: replies and pushes, several per frame, one a line. */
const centrifugo: ClientProtocol = {
  url: (base) => base,
  greeting: (token) => JSON.stringify({ id: 1, connect: { token, name: 'minipush-bench' } }),
  read(text, parse, sink, send) {
    for (const line of text.includes('\n') ? text.split('\n') : [text]) {
      if (line === '') continue;
      // An app-level ping: answer each with one empty command, or be disconnected (no pong, or
      // an unasked-for pong).
      if (line === '{}') {
        send('{}');
        continue;
      }
      if (!parse && line.startsWith('{"push":{"channel"') && line.includes('"pub":')) {
        sink.delivered(null);
        continue;
      }
      const reply = JSON.parse(line) as CentrifugoReply;
      if (reply.push?.pub) sink.delivered(reply.push.pub.data?.n ?? 0);
      else if (reply.id === 1 && reply.connect) sink.ready(0);
      else if (reply.error) sink.refused(`${reply.error.code} ${reply.error.message}`);
    }
  },
};

export const PROTOCOLS: Readonly<Record<ProtocolName, ClientProtocol>> = { minipush, centrifugo };

/** How a load process publishes, and where to. */
export type PublishVia =
  /** MiniPush's commands topic, with the `minipush/producer` helper (Kafka + MariaDB). */
  | { readonly kind: 'kafka'; readonly brokers: string; readonly topicPrefix: string }
  /** MiniPush's REST API, POST /v1/events (the embedded default's log lives in the server). */
  | { readonly kind: 'rest'; readonly url: string; readonly apiKey: string }
  /**
   * Head changes straight to MiniPush's heads topic: the load plays the projector. `perUser`
   * writes one record per user, as projectors did before they batched changes (a baseline hub
   * from then reads only those).
   */
  | {
      readonly kind: 'heads';
      readonly brokers: string;
      readonly topic: string;
      readonly perUser?: boolean;
    }
  /** Centrifugo's HTTP API: /api/publish per event, /api/broadcast for a fan-out round. */
  | { readonly kind: 'centrifugo'; readonly url: string; readonly apiKey: string };

/** Publishes as a business server would; each call resolves once the server accepted it. */
export interface Publisher {
  /** One event per item, to that user, carrying the seq the user should see (latency). */
  each(items: ReadonlyArray<{ readonly uid: number; readonly seq: number }>): Promise<void>;
  /** Fan-out round `n`: one event (or head change) to all these users. */
  round(uids: readonly number[], n: number): Promise<void>;
  /** Requests the server refused so far. */
  errors(): number;
  close(): Promise<void>;
}

/** Gives up on a publisher whose server keeps refusing: the figures would mean nothing. */
function errorCounter(what: string): { add(detail: string): void; count(): number } {
  let errors = 0;
  return {
    add(detail) {
      if (++errors > 1000) throw new Error(`${what} keeps failing (${detail})`);
    },
    count: () => errors,
  };
}

async function commandsPublisher(via: {
  brokers: string;
  topicPrefix: string;
}): Promise<Publisher> {
  const producer: CommandProducer = await createCommandProducer({
    brokers: via.brokers.split(','),
    topicPrefix: via.topicPrefix,
    clientId: 'minipush-bench-ws',
    limits: { maxRecipients: 100_000 },
  });
  return {
    async each(items) {
      await producer.publishMany(items.map((i) => ({ to: [i.uid], body: { n: i.seq } })));
    },
    async round(uids, n) {
      await producer.publishMany([{ to: [...uids], body: { n } }]);
    },
    errors: () => 0,
    close: () => producer.close(),
  };
}

async function headsPublisher(via: {
  brokers: string;
  topic: string;
  perUser?: boolean;
}): Promise<Publisher> {
  const kafka = new Kafka({
    clientId: 'minipush-bench-heads',
    brokers: via.brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const producer: Producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  // Heads only ever grow: a process's later rounds continue above its earlier ones.
  let sent = 0;
  return {
    each: () => Promise.reject(new Error('head changes carry no events to time')),
    async round(uids) {
      const headSeq = 1_000_000 + sent++;
      const changes: HeadChange[] = uids.map((uid) => ({
        uid,
        headSeq,
        floorSeq: 1,
        unreadCount: headSeq,
        unseenCount: headSeq,
        archivedCount: 0,
        readVersion: 0,
        logTime: Date.now(),
      }));
      // As a projector writes them (a record of changes per 500 users), or one per user.
      const messages = via.perUser
        ? changes.map((change) => ({ key: String(change.uid), value: encodeHeadChange(change) }))
        : headChangesRecords(changes).map((value, i) => ({ key: `round-${i}`, value }));
      await producer.send({ topic: via.topic, acks: 1, messages });
    },
    errors: () => 0,
    close: () => producer.disconnect(),
  };
}

function httpPublisher(
  label: string,
  headers: Record<string, string>,
  one: (uid: number, n: number) => { url: string; payload: unknown },
  all: (uids: readonly number[], n: number) => { url: string; payload: unknown },
  accepted: (status: number, body: string) => boolean,
): Publisher {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const failures = errorCounter(label);
  const post = async ({ url, payload }: { url: string; payload: unknown }) => {
    const answer = await postJson(agent, url, headers, payload, true).catch((err: unknown) => ({
      status: 0,
      body: String(err),
    }));
    if (!accepted(answer.status, answer.body)) failures.add(`${answer.status} ${answer.body}`);
  };
  return {
    async each(items) {
      await Promise.all(items.map((i) => post(one(i.uid, i.seq))));
    },
    round: (uids, n) => post(all(uids, n)),
    errors: () => failures.count(),
    close: () => Promise.resolve(agent.destroy()),
  };
}

/** Centrifugo's personal channel of a user, `<namespace>:#<uid>`, as the server forms it. */
export function personalChannel(uid: number): string {
  return `personal:#${uid}`;
}

export async function createPublisher(via: PublishVia): Promise<Publisher> {
  switch (via.kind) {
    case 'kafka':
      return commandsPublisher(via);
    case 'heads':
      return headsPublisher(via);
    case 'rest':
      return httpPublisher(
        'MiniPush REST publish',
        { authorization: `Bearer ${via.apiKey}` },
        (uid, n) => ({ url: `${via.url}/v1/events`, payload: { to: [uid], body: { n } } }),
        (uids, n) => ({ url: `${via.url}/v1/events`, payload: { to: uids, body: { n } } }),
        (status) => status === 202,
      );
    case 'centrifugo':
      return httpPublisher(
        'Centrifugo HTTP API',
        { 'x-api-key': via.apiKey },
        (uid, n) => ({
          url: `${via.url}/api/publish`,
          payload: { channel: personalChannel(uid), data: { n } },
        }),
        (uids, n) => ({
          url: `${via.url}/api/broadcast`,
          payload: { channels: uids.map(personalChannel), data: { n } },
        }),
        // Errors come back as 200 with an `error` member (transport error mode).
        (status, body) => status === 200 && !body.includes('"error"'),
      );
    default: {
      const never: never = via;
      throw new Error(`unknown publisher ${JSON.stringify(never)}`);
    }
  }
}
