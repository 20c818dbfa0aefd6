import { createCommandProducer } from '../src/commands/producer.js';
import type { Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids } from './lib/cpu.js';
import {
  JWT_SECRET,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type ServerProcess,
} from './lib/deployment.js';
import { atLeast, atMost, type Row } from './lib/result.js';
import { until } from './lib/stats.js';

const USERS = 1000;
const EVENTS_PER_USER = 100;
const PAGE = 50;
const CONCURRENCY = 32;

export const diff: Benchmark = {
  name: 'diff',
  description: 'GET …/events?after= pages of 50 events over REST and gRPC, 32 concurrent clients',
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

      const api = await spawnServer(deployment.env(['api']), { label: 'api' });
      servers.push(api);
      const pids = { 'minipush(api)': api.pid, ...servicePids() };
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
      const conditions = (transport: string) =>
        `kafka+mariadb, one api process (pool ${deployment.config.mysqlPoolSize}), ${CONCURRENCY} ${transport}, ${USERS.toLocaleString('en-US')} users × ${EVENTS_PER_USER} events (~150 B bodies), user JWTs, ${seconds} s`;

      const rest = new LoadProcess('rest-diff');
      try {
        const window = cpuWindow({ ...pids, autocannon: rest.pid });
        const result = await rest.ask<Record<string, any> & { type: string }>(
          { type: 'run', setup: { ...common, url: api.url, connections: CONCURRENCY } },
          'result',
          (seconds + 60) * 1000,
        );
        const cpu = window.stop();
        details.rest = { ...result, cpu };
        if (result.non2xx > 0 || result.errors > 0)
          throw new Error(`REST diff errors: ${JSON.stringify(result)}`);
        rows.push(
          {
            metric: 'REST req/s',
            value: result.perSecond,
            unit: '/s',
            ...atLeast(result.perSecond, 10_000),
            conditions: conditions('HTTP/1.1 keep-alive connections (autocannon)'),
          },
          {
            metric: 'REST p99',
            value: result.latency.p99,
            unit: 'ms',
            ...atMost(result.latency.p99, 5),
            conditions: `p50 ${result.latency.p50} ms`,
          },
        );
      } finally {
        await rest.stop();
      }

      const grpcLoad = new LoadProcess('grpc-diff');
      try {
        const window = cpuWindow({ ...pids, 'grpc client': grpcLoad.pid });
        const result = await grpcLoad.ask<Record<string, any> & { type: string }>(
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
        const cpu = window.stop();
        details.grpc = { ...result, cpu };
        if (result.errors > 0) throw new Error(`gRPC diff errors: ${JSON.stringify(result)}`);
        rows.push(
          {
            metric: 'gRPC req/s',
            value: result.perSecond,
            unit: '/s',
            ...atLeast(result.perSecond, 8_000),
            conditions: conditions('calls in flight over 4 channels (grpc-js)'),
          },
          {
            metric: 'gRPC p99',
            value: result.latency.p99,
            unit: 'ms',
            ...atMost(result.latency.p99, 5),
            conditions: `p50 ${result.latency.p50.toFixed(2)} ms`,
          },
        );
      } finally {
        await grpcLoad.stop();
      }
      return { rows, details };
    } finally {
      for (const server of servers) await server.stop();
      await deployment.destroy();
    }
  },
};
