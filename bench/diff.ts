import { createCommandProducer } from '../src/commands/producer.js';
import type { Config } from '../src/config.js';
import type { Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids, type CpuReport } from './lib/cpu.js';
import {
  JWT_SECRET,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type ServerProcess,
} from './lib/deployment.js';
import { atLeast, atMost, info, type Row } from './lib/result.js';
import { until } from './lib/stats.js';

const USERS = 1000;
const EVENTS_PER_USER = 100;
const PAGE = 50;
const CONCURRENCY = 32;

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

/** REST then gRPC load against one api process, with the CPU of every process during each. */
async function measure(
  api: ServerProcess,
  pids: Record<string, number>,
  common: Record<string, unknown>,
  seconds: number,
): Promise<{ rest: LoadResult; grpc: LoadResult }> {
  const rest = new LoadProcess('rest-diff');
  let restResult: LoadResult;
  try {
    const window = cpuWindow({ ...pids, autocannon: rest.pid });
    const result = await rest.ask<LoadResult>(
      { type: 'run', setup: { ...common, url: api.url, connections: CONCURRENCY } },
      'result',
      (seconds + 60) * 1000,
    );
    restResult = { ...result, cpu: window.stop() };
    if (result.non2xx > 0 || result.errors > 0)
      throw new Error(`REST diff errors: ${JSON.stringify(result)}`);
  } finally {
    await rest.stop();
  }
  const grpcLoad = new LoadProcess('grpc-diff');
  try {
    const window = cpuWindow({ ...pids, 'grpc client': grpcLoad.pid });
    const result = await grpcLoad.ask<LoadResult>(
      {
        type: 'run',
        setup: {
          ...common,
          target: `127.0.0.1:${api.grpcPort}`,
          concurrency: CONCURRENCY,
          channels: 4,
        },
      },
      'result',
      (seconds + 60) * 1000,
    );
    if (result.errors > 0) throw new Error(`gRPC diff errors: ${JSON.stringify(result)}`);
    return { rest: restResult, grpc: { ...result, cpu: window.stop() } };
  } finally {
    await grpcLoad.stop();
  }
}

export const diff: Benchmark = {
  name: 'diff',
  description:
    'GET …/events?after= pages of 50 events over REST and gRPC, 32 concurrent clients, read cache on, off and starved',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 8 : 20;
    const services = await ctx.services();
    const deployment = await kafkaDeployment(services, { partitions: 8 });
    const servers: ServerProcess[] = [];
    try {
      // Seed: every user gets EVENTS_PER_USER events of a realistic size.
      const projector = await spawnServer(deployment.env(['projector']), { label: 'projector' });
      servers.push(projector);
      const producer = await createCommandProducer({
        brokers: services.kafkaBrokers.split(','),
        topicPrefix: deployment.config.topicPrefix,
        limits: { maxRecipients: 10_000 },
      });
      const everyone = Array.from({ length: USERS }, (_, i) => 1 + i);
      for (let n = 0; n < EVENTS_PER_USER; n += 10) {
        await producer.publishMany(
          Array.from({ length: 10 }, (_, k) => ({
            to: everyone,
            body: {
              text: `Your order #${100_000 + n + k} has shipped and arrives on Thursday`,
              order: 100_000 + n + k,
              link: `https://shop.example/orders/${100_000 + n + k}`,
            },
          })),
        );
      }
      await producer.close();
      const total = USERS * EVENTS_PER_USER;
      const seeded = await until(
        async () =>
          (await scrapeMetric(projector.url!, 'minipush_projector_deliveries_total')) >= total,
        180_000,
        500,
      );
      if (!seeded) throw new Error('seeding the feeds did not finish in 180 s');
      await projector.stop();
      servers.length = 0;
      ctx.log(`seeded ${total} deliveries`);

      const rows: Row[] = [];
      const details: Record<string, unknown> = {};
      const common = {
        secret: JWT_SECRET,
        users: USERS,
        firstUid: 1,
        eventsPerUser: EVENTS_PER_USER,
        pageSize: PAGE,
        seconds,
      };
      const conditions = (transport: string, variant: Variant) =>
        `kafka+mariadb, one api process (pool ${deployment.config.mysqlPoolSize}), ${variant.conditions}, ${CONCURRENCY} ${transport}, ${USERS.toLocaleString('en-US')} users × ${EVENTS_PER_USER} events (~150 B bodies), user JWTs, ${seconds} s`;
      const perSecond: Record<string, number> = {};
      for (const variant of VARIANTS) {
        const api = await spawnServer(deployment.env(['api'], variant.config), {
          label: `api (${variant.name})`,
        });
        try {
          const pids = { 'minipush(api)': api.pid, ...servicePids() };
          const measured = await measure(api, pids, common, seconds);
          details[variant.name] = measured;
          const mariadbUs = (cpu: CpuReport, rate: number) =>
            rate > 0 ? Math.round(((cpu.processes.mariadb ?? 0) * 10_000) / rate) : 0;
          for (const [transport, result, label] of [
            ['REST', measured.rest, 'HTTP/1.1 keep-alive connections (autocannon)'],
            ['gRPC', measured.grpc, 'calls in flight over 4 channels (grpc-js)'],
          ] as const) {
            perSecond[`${transport} ${variant.name}`] = result.perSecond;
            rows.push(
              {
                metric: `${transport} req/s, ${variant.name}`,
                value: result.perSecond,
                unit: '/s',
                ...(variant.name === 'cache on' ? atLeast(result.perSecond, 10_000) : info()),
                conditions: conditions(label, variant),
              },
              {
                metric: `${transport} p99, ${variant.name}`,
                value: result.latency.p99,
                unit: 'ms',
                ...(variant.name === 'cache on' ? atMost(result.latency.p99, 5) : info()),
                conditions: `p50 ${Number(result.latency.p50).toFixed(2)} ms`,
              },
              {
                metric: `${transport} MariaDB CPU per diff, ${variant.name}`,
                value: mariadbUs(result.cpu, result.perSecond),
                unit: 'µs',
                ...info(),
                conditions: `cpu % of a core: ${JSON.stringify(result.cpu.processes)}`,
              },
            );
          }
        } finally {
          await api.stop();
        }
      }
      for (const transport of ['REST', 'gRPC']) {
        const on = perSecond[`${transport} cache on`] ?? 0;
        const off = perSecond[`${transport} cache off`] ?? 0;
        rows.push({
          metric: `${transport} req/s, cache on ÷ cache off`,
          value: off > 0 ? Math.round((on / off) * 100) / 100 : 0,
          unit: '×',
          ...info(),
          conditions: 'the same run, the same seeded feeds, one api process each',
        });
      }
      return { rows, details };
    } finally {
      for (const server of servers) await server.stop();
      await deployment.destroy();
    }
  },
};
