import { spawn } from 'node:child_process';
import { createCommandProducer } from '../src/commands/producer.js';
import type { Benchmark, Outcome } from './lib/context.js';
import { cpuWindow, servicePids } from './lib/cpu.js';
import {
  BIN,
  benchNodeOptions,
  embeddedDeployment,
  profilingArgs,
  kafkaDeployment,
  spawnServer,
  API_KEY,
  type Deployment,
} from './lib/deployment.js';
import { atLeast, info, type Row } from './lib/result.js';

const USERS = 100_000;

function randomUids(n: number): number[] {
  const picked = new Set<number>();
  while (picked.size < n) picked.add(1 + Math.floor(Math.random() * USERS));
  return [...picked];
}

/** Runs `minipush rebuild` and returns what it printed, with its CPU use. */
function runRebuild(env: Record<string, string>): Promise<{ out: string; cpu: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...profilingArgs('rebuild'), BIN, 'rebuild'], {
      env: {
        PATH: process.env.PATH ?? '',
        KAFKAJS_NO_PARTITIONER_WARNING: '1',
        ...benchNodeOptions(),
        ...env,
        MINIPUSH_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const window = cpuWindow({ 'minipush rebuild': child.pid!, ...servicePids() });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    child.once('exit', (code) => {
      const cpu = window.stop();
      if (code === 0) resolve({ out, cpu });
      else reject(new Error(`minipush rebuild exited ${code}\n${out}\n${err}`));
    });
  });
}

function parse(out: string): { deliveries: number; perSecond: number; seconds: number } {
  const match = /rebuilt (\d+) deliveries .* in ([\d.]+) s \((\d+) deliveries\/s\)/.exec(out);
  if (!match) throw new Error(`unexpected rebuild output: ${out}`);
  return { deliveries: Number(match[1]), seconds: Number(match[2]), perSecond: Number(match[3]) };
}

export const rebuild: Benchmark = {
  name: 'rebuild',
  description: 'deliveries per second replaying the projections from the commands log',
  async run(ctx): Promise<Outcome> {
    const scale = ctx.quick ? 0.25 : 1;
    const wide = Math.round(6000 * scale); // events with 100 recipients
    const single = Math.round(100_000 * scale); // events with one recipient
    const rows: Row[] = [];
    const details: Record<string, unknown> = {};

    // Kafka + MariaDB: the log is produced straight to Kafka, nothing projected before.
    const services = await ctx.services();
    let deployment: Deployment = await kafkaDeployment(services, { partitions: 8 });
    try {
      const producer = await createCommandProducer({
        brokers: services.kafkaBrokers.split(','),
        topicPrefix: deployment.config.topicPrefix,
      });
      for (let i = 0; i < wide; i += 50) {
        await producer.publishMany(
          Array.from({ length: 50 }, (_, k) => ({ to: randomUids(100), body: { n: i + k } })),
        );
      }
      for (let i = 0; i < single; i += 1000) {
        await producer.publishMany(
          Array.from({ length: 1000 }, (_, k) => ({ to: randomUids(1), body: { n: i + k } })),
        );
      }
      await producer.close();
      ctx.log(`log seeded: ${wide} events × 100 recipients + ${single} × 1`);
      const { out, cpu } = await runRebuild(deployment.env(['projector']));
      const result = parse(out);
      details.kafka = { ...result, cpu, out: out.trim() };
      rows.push({
        metric: 'deliveries/s replayed',
        value: result.perSecond,
        unit: '/s',
        ...atLeast(result.perSecond, 60_000),
        conditions: `kafka+mariadb, 8 partitions, ${result.deliveries.toLocaleString('en-US')} deliveries (${wide.toLocaleString('en-US')} events × 100 + ${single.toLocaleString('en-US')} × 1, ${USERS.toLocaleString('en-US')} users), minipush rebuild`,
      });
    } finally {
      await deployment.destroy();
    }

    // Embedded: the log is written through REST by the server, then rebuilt with it stopped.
    deployment = embeddedDeployment({ partitions: 8 });
    try {
      const server = await spawnServer(deployment.env(['api']), { label: 'embedded api' });
      const post = (events: unknown[]) =>
        Promise.all(
          events.map((event) =>
            fetch(`${server.url}/v1/events`, {
              method: 'POST',
              headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
              body: JSON.stringify(event),
            }).then((r) => {
              if (r.status !== 202) throw new Error(`publish answered ${r.status}`);
            }),
          ),
        );
      const small = Math.round(wide / 4);
      for (let i = 0; i < small; i += 50) {
        await post(
          Array.from({ length: 50 }, (_, k) => ({ to: randomUids(100), body: { n: i + k } })),
        );
      }
      await server.stop();
      const { out, cpu } = await runRebuild(deployment.env(['projector']));
      const result = parse(out);
      details.embedded = { ...result, cpu, out: out.trim() };
      rows.push({
        metric: 'deliveries/s replayed',
        value: result.perSecond,
        unit: '/s',
        ...info(),
        conditions: `embedded, ${result.deliveries.toLocaleString('en-US')} deliveries (${small.toLocaleString('en-US')} events × 100), minipush rebuild`,
      });
    } finally {
      await deployment.destroy();
    }
    return { rows, details };
  },
};
