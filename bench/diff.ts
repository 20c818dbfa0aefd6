import { createCommandProducer } from '../src/commands/producer.js';
import type { Config } from '../src/config.js';
import type { Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids, type CpuReport } from './lib/cpu.js';
import {
  API_KEY,
  JWT_SECRET,
  embeddedDeployment,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type Deployment,
  type ServerProcess,
} from './lib/deployment.js';
import { atLeast, atMost, info, type Row } from './lib/result.js';
import { until } from './lib/stats.js';

const USERS = 1000;
const EVENTS_PER_USER = 100;
const PAGE = 50;
const CONCURRENCY = 32;
/** The offered rate of the fixed-rate latency row. */
const FIXED_RATE = 2000;

interface Variant {
  readonly name: string;
  readonly config: Partial<Config>;
  readonly conditions: string;
}

/** The read cache on (the default), off, and starved, so every user is read from the store. */
const VARIANTS: readonly Variant[] = [
  { name: 'cache on', config: {}, conditions: 'read cache on (64 MiB, default)' },
  { name: 'cache off', config: { readCacheBytes: 0 }, conditions: 'read cache off' },
  {
    name: 'cache 256 KiB',
    config: { readCacheBytes: 256 * 1024 },
    conditions: 'read cache of 256 KiB: nearly every query misses',
  },
];

type LoadResult = Record<string, any> & {
  type: string;
  perSecond: number;
  latency: { p50: number; p99: number };
  cpu: CpuReport;
};

type Transport = 'REST' | 'gRPC' | 'WebSocket' | `REST at ${number}/s`;

const TARGETS: Partial<Record<Transport, { perSecond?: number; p99?: number }>> = {
  REST: { perSecond: 10_000 },
  gRPC: { perSecond: 6_000 },
  WebSocket: { perSecond: 10_000 },
  [`REST at ${FIXED_RATE}/s`]: { p99: 5 },
};

const seedBody = (n: number) => ({
  text: `Your order #${100_000 + n} has shipped and arrives on Thursday`,
  order: 100_000 + n,
  link: `https://shop.example/orders/${100_000 + n}`,
});

/** One load program against one server, with the CPU of every process meanwhile. */
async function runLoad(
  program: string,
  setup: Record<string, unknown>,
  pids: Record<string, number>,
  seconds: number,
): Promise<LoadResult> {
  const load = new LoadProcess(program);
  try {
    const window = cpuWindow({ ...pids, [program]: load.pid });
    const result = await load.ask<LoadResult>(
      { type: 'run', setup },
      'result',
      (seconds + 60) * 1000,
    );
    const cpu = window.stop();
    if ((result.non2xx ?? 0) > 0 || result.errors > 0)
      throw new Error(`${program} errors: ${JSON.stringify(result)}`);
    return { ...result, cpu };
  } finally {
    await load.stop();
  }
}

/** Every transport's load against one server answering queries. */
async function measureServer(
  server: ServerProcess,
  transports: readonly Transport[],
  seconds: number,
): Promise<Partial<Record<Transport, LoadResult>>> {
  const pids = { minipush: server.pid, ...servicePids() };
  const common = {
    secret: JWT_SECRET,
    users: USERS,
    firstUid: 1,
    eventsPerUser: EVENTS_PER_USER,
    pageSize: PAGE,
    seconds,
  };
  const out: Partial<Record<Transport, LoadResult>> = {};
  for (const transport of transports) {
    if (transport === 'REST') {
      out[transport] = await runLoad(
        'rest-diff',
        { ...common, url: server.url, connections: CONCURRENCY },
        pids,
        seconds,
      );
    } else if (transport === 'gRPC') {
      out[transport] = await runLoad(
        'grpc-diff',
        {
          ...common,
          target: `127.0.0.1:${server.grpcPort}`,
          concurrency: CONCURRENCY,
          channels: 4,
        },
        pids,
        seconds,
      );
    } else if (transport === 'WebSocket') {
      out[transport] = await runLoad(
        'ws-diff',
        { ...common, url: `${server.url!.replace('http', 'ws')}/v1/ws`, sessions: CONCURRENCY },
        pids,
        seconds,
      );
    } else {
      out[transport] = await runLoad(
        'rest-diff',
        { ...common, url: server.url, connections: CONCURRENCY, rate: FIXED_RATE },
        pids,
        seconds,
      );
    }
  }
  return out;
}

const LOAD_CONDITIONS: Record<Transport, string> = {
  REST: `${CONCURRENCY} HTTP/1.1 keep-alive connections (autocannon)`,
  gRPC: `${CONCURRENCY} calls in flight over 4 channels (grpc-js)`,
  WebSocket: `${CONCURRENCY} sessions (one user each), one diff request in flight per session`,
  [`REST at ${FIXED_RATE}/s`]: `${FIXED_RATE.toLocaleString('en-US')} req/s offered over ${CONCURRENCY} connections`,
};

/** The rows of one server's measurements: rate, p99 and MariaDB CPU per diff for each load. */
function rowsOf(
  backend: string,
  variant: Variant,
  measured: Partial<Record<Transport, LoadResult>>,
  seconds: number,
): Row[] {
  const rows: Row[] = [];
  const shape = `${USERS.toLocaleString('en-US')} users × ${EVENTS_PER_USER} events (~150 B bodies), pages of ${PAGE}, user JWTs, ${seconds} s`;
  for (const [transport, result] of Object.entries(measured) as Array<[Transport, LoadResult]>) {
    const target = variant.name === 'cache on' ? TARGETS[transport] : undefined;
    const name = `${backend} ${transport}, ${variant.name}`;
    if (!transport.startsWith('REST at')) {
      rows.push({
        metric: `${name}: req/s`,
        value: result.perSecond,
        unit: '/s',
        ...(target?.perSecond ? atLeast(result.perSecond, target.perSecond) : info()),
        conditions: `${variant.conditions}, ${LOAD_CONDITIONS[transport]}, ${shape}`,
      });
    }
    rows.push({
      metric: `${name}: p99`,
      value: Math.round(result.latency.p99 * 100) / 100,
      unit: 'ms',
      ...(target?.p99 ? atMost(result.latency.p99, target.p99) : info()),
      conditions: `p50 ${Number(result.latency.p50).toFixed(2)} ms, ${result.perSecond} req/s; CPU % of a core: ${JSON.stringify(result.cpu.processes)}, box ${result.cpu.systemBusyPercent} % busy`,
    });
    const mariadb = result.cpu.processes.mariadb;
    if (mariadb !== undefined && result.perSecond > 0) {
      rows.push({
        metric: `${name}: MariaDB CPU per diff`,
        value: Math.round((mariadb * 10_000) / result.perSecond),
        unit: 'µs',
        ...(target && transport === 'REST'
          ? atMost((mariadb * 10_000) / result.perSecond, 30)
          : info()),
        conditions: `MariaDB at ${mariadb} % of a core`,
      });
    }
  }
  return rows;
}

function ratioRows(
  backend: string,
  perSecond: Record<string, number>,
  transports: readonly Transport[],
): Row[] {
  return transports
    .filter((t) => !t.startsWith('REST at'))
    .map((transport) => {
      const on = perSecond[`${transport} cache on`] ?? 0;
      const off = perSecond[`${transport} cache off`] ?? 0;
      const ratio = off > 0 ? Math.round((on / off) * 100) / 100 : 0;
      return {
        metric: `${backend} ${transport}: req/s cache on ÷ cache off`,
        value: ratio,
        unit: '×',
        ...(transport === 'REST' && backend === 'kafka+mariadb' ? atLeast(ratio, 3) : info()),
        conditions: 'the same run, the same seeded feeds, one server process each',
      };
    });
}

async function seedKafka(
  deployment: Deployment,
  brokers: string,
  log: (line: string) => void,
): Promise<void> {
  const projector = await spawnServer(deployment.env(['projector']), { label: 'projector' });
  try {
    const producer = await createCommandProducer({
      brokers: brokers.split(','),
      topicPrefix: deployment.config.topicPrefix,
      limits: { maxRecipients: 10_000 },
    });
    const everyone = Array.from({ length: USERS }, (_, i) => 1 + i);
    for (let n = 0; n < EVENTS_PER_USER; n += 10) {
      await producer.publishMany(
        Array.from({ length: 10 }, (_, k) => ({ to: everyone, body: seedBody(n + k) })),
      );
    }
    await producer.close();
    await waitDeliveries(projector);
    log(`seeded ${USERS * EVENTS_PER_USER} deliveries (kafka+mariadb)`);
  } finally {
    await projector.stop();
  }
}

async function seedRest(server: ServerProcess, log: (line: string) => void): Promise<void> {
  const everyone = Array.from({ length: USERS }, (_, i) => 1 + i);
  for (let n = 0; n < EVENTS_PER_USER; n++) {
    const res = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: everyone, body: seedBody(n) }),
    });
    if (res.status !== 202) throw new Error(`seeding: ${res.status} ${await res.text()}`);
  }
  await waitDeliveries(server);
  log(`seeded ${USERS * EVENTS_PER_USER} deliveries (embedded)`);
}

async function waitDeliveries(projector: ServerProcess): Promise<void> {
  const total = USERS * EVENTS_PER_USER;
  const seeded = await until(
    async () =>
      (await scrapeMetric(projector.url!, 'minipush_projector_deliveries_total')) >= total,
    180_000,
    500,
  );
  if (!seeded) throw new Error('seeding the feeds did not finish in 180 s');
}

export const diff: Benchmark = {
  name: 'diff',
  description:
    'diff pages of 50 events over REST, gRPC and WebSocket with the read cache on, off and starved; Kafka + MariaDB and embedded',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 8 : 15;
    const services = await ctx.services();
    const rows: Row[] = [];
    const details: Record<string, unknown> = {};

    const kafka = await kafkaDeployment(services, { partitions: 8 });
    try {
      await seedKafka(kafka, services.kafkaBrokers, (line) => ctx.log(line));
      const transports: Transport[] = ['REST', 'gRPC', 'WebSocket', `REST at ${FIXED_RATE}/s`];
      const perSecond: Record<string, number> = {};
      for (const variant of VARIANTS) {
        // One process answering REST, gRPC and WebSocket: the api and hub roles.
        const server = await spawnServer(kafka.env(['api', 'hub'], variant.config), {
          label: `api (${variant.name})`,
        });
        try {
          const measured = await measureServer(
            server,
            variant.name === 'cache 256 KiB' ? ['REST'] : transports,
            seconds,
          );
          details[`kafka+mariadb ${variant.name}`] = measured;
          for (const [t, r] of Object.entries(measured))
            perSecond[`${t} ${variant.name}`] = r!.perSecond;
          rows.push(...rowsOf('kafka+mariadb', variant, measured, seconds));
          ctx.log(`kafka+mariadb ${variant.name} measured`);
        } finally {
          await server.stop();
        }
      }
      rows.push(...ratioRows('kafka+mariadb', perSecond, transports));
    } finally {
      await kafka.destroy();
    }

    const embedded = embeddedDeployment({ partitions: 8 });
    try {
      const perSecond: Record<string, number> = {};
      let seeded = false;
      for (const variant of VARIANTS.slice(0, 2)) {
        const server = await spawnServer(
          embedded.env(['api', 'projector', 'hub'], variant.config),
          { label: `embedded (${variant.name})` },
        );
        try {
          if (!seeded) await seedRest(server, (line) => ctx.log(line));
          seeded = true;
          const measured = await measureServer(server, ['REST', 'WebSocket'], seconds);
          details[`embedded ${variant.name}`] = measured;
          for (const [t, r] of Object.entries(measured))
            perSecond[`${t} ${variant.name}`] = r!.perSecond;
          rows.push(...rowsOf('embedded', variant, measured, seconds));
        } finally {
          await server.stop();
        }
      }
      rows.push(...ratioRows('embedded', perSecond, ['REST', 'WebSocket']));
    } finally {
      await embedded.destroy();
    }
    return { rows, details };
  },
};
