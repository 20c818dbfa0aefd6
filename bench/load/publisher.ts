/**
 * Publishes events as a business server would: straight to the commands topic with the
 * `minipush/producer` helper (Kafka), or by REST POST /v1/events (the embedded default, whose
 * log lives inside the server). Produces only up to the cumulative count the parent allows, so
 * the backlog stays bounded and what is measured is the rate the pipeline sustains.
 */
import http from 'node:http';
import { createCommandProducer, type CommandProducer } from '../../src/commands/producer.js';
import { reply, serve, type Message } from '../lib/child.js';
import { postJson } from '../lib/http.js';
import { sleep } from '../lib/stats.js';

interface Setup {
  readonly mode: 'kafka' | 'rest';
  readonly brokers?: string;
  readonly topicPrefix?: string;
  readonly url?: string;
  readonly apiKey?: string;
  readonly recipients: number;
  readonly users: number;
  readonly firstUid: number;
  /** Events per produce request (Kafka). */
  readonly batchEvents: number;
  /** Parallel loops: produce requests or REST requests in flight. */
  readonly concurrency: number;
  readonly durationMs: number;
}

let setup: Setup;
let producer: CommandProducer | null = null;
let allowed = 0;
let produced = 0;
let events = 0;
let stopped = false;
let errors = 0;
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function recipients(): number[] {
  const { recipients: n, users, firstUid } = setup;
  if (n === 1) return [firstUid + Math.floor(Math.random() * users)];
  const picked = new Set<number>();
  while (picked.size < n) picked.add(firstUid + Math.floor(Math.random() * users));
  return [...picked];
}

function body(): unknown {
  return { text: 'bench event', n: events, at: Date.now() };
}

function post(path: string, payload: unknown): Promise<number> {
  const headers = { authorization: `Bearer ${setup.apiKey}` };
  return postJson(agent, new URL(path, setup.url).toString(), headers, payload).then(
    (answer) => answer.status,
  );
}

async function loop(deadline: number): Promise<void> {
  while (!stopped && Date.now() < deadline) {
    const room = allowed - produced;
    if (room < setup.recipients) {
      await sleep(2);
      continue;
    }
    if (setup.mode === 'kafka') {
      const count = Math.max(1, Math.min(setup.batchEvents, Math.floor(room / setup.recipients)));
      const inputs = Array.from({ length: count }, () => ({ to: recipients(), body: body() }));
      produced += count * setup.recipients;
      events += count;
      await producer!.publishMany(inputs);
    } else {
      produced += setup.recipients;
      events++;
      const status = await post('/v1/events', { to: recipients(), body: body() }).catch(() => 0);
      if (status !== 202) {
        errors++;
        produced -= setup.recipients;
        events--;
        if (errors > 1000) throw new Error(`REST publish keeps failing (status ${status})`);
      }
    }
  }
}

serve(async (message: Message) => {
  switch (message.type) {
    case 'setup': {
      setup = message.setup as Setup;
      if (setup.mode === 'kafka') {
        producer = await createCommandProducer({
          brokers: setup.brokers!.split(','),
          topicPrefix: setup.topicPrefix!,
          clientId: 'minipush-bench-publisher',
          limits: { maxRecipients: 10_000 },
        });
      }
      reply({ type: 'ready' });
      break;
    }
    case 'allow':
      allowed = Math.max(allowed, Number(message.deliveries));
      break;
    case 'start': {
      const started = Date.now();
      const deadline = started + setup.durationMs;
      await Promise.all(Array.from({ length: setup.concurrency }, () => loop(deadline)));
      reply({
        type: 'done',
        events,
        deliveries: produced,
        errors,
        seconds: (Date.now() - started) / 1000,
      });
      break;
    }
    case 'stop':
      stopped = true;
      break;
    case 'close':
      await producer?.close();
      agent.destroy();
      reply({ type: 'closed' });
      break;
    default:
      throw new Error(`unknown command ${message.type}`);
  }
});
