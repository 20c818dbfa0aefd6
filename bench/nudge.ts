import type { BenchContext, Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids } from './lib/cpu.js';
import { deliveredSoFar, deliveryWindow } from './lib/deliveries.js';
import {
  JWT_SECRET,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type Deployment,
  type ServerProcess,
} from './lib/deployment.js';
import type { PublishVia } from './lib/protocols.js';
import { atLeast, atMost, info, type Row } from './lib/result.js';
import { sleep } from './lib/stats.js';

interface HubStack {
  readonly deployment: Deployment;
  /** Publishing as a business server does: the Kafka producer to the commands topic. */
  readonly via: Extract<PublishVia, { kind: 'kafka' }>;
  readonly projector: ServerProcess;
  readonly hub: ServerProcess;
  readonly clients: LoadProcess;
  readonly opened: number;
  pids(): Record<string, number>;
  close(): Promise<void>;
}

/** A projector and a hub on Kafka + MariaDB, with `sessions` live sessions from a client process. */
async function hubStack(
  ctx: BenchContext,
  sessions: number,
  sessionsPerUid: number,
): Promise<HubStack> {
  const services = await ctx.services();
  const deployment = await kafkaDeployment(services, { partitions: 8 });
  const servers: ServerProcess[] = [];
  const clients = new LoadProcess('ws-clients');
  try {
    const projector = await spawnServer(deployment.env(['projector']), { label: 'projector' });
    servers.push(projector);
    const hub = await spawnServer(deployment.env(['hub']), { label: 'hub' });
    servers.push(hub);
    await clients.ask(
      {
        type: 'setup',
        setup: {
          secret: JWT_SECRET,
          targets: [
            {
              url: `${hub.url!.replace(/^http/, 'ws')}/v1/ws`,
              count: sessions,
              firstUid: 1,
              sessionsPerUid,
              localAddresses: ['127.0.0.2'],
            },
          ],
          connectConcurrency: 100,
        },
      },
      'ready',
    );
    const connected = await clients.ask<{
      type: string;
      opened: number;
      seconds: number;
      errors: string[];
    }>({ type: 'connect' }, 'connected', 300_000);
    ctx.log(`${connected.opened} sessions open in ${connected.seconds.toFixed(1)} s`);
    if (connected.opened < sessions) {
      throw new Error(
        `only ${connected.opened} of ${sessions} sessions opened: ${connected.errors.join('; ')}`,
      );
    }
    // Let the session records and hellos settle.
    await sleep(2000);
    return {
      deployment,
      via: {
        kind: 'kafka',
        brokers: services.kafkaBrokers,
        topicPrefix: deployment.config.topicPrefix,
      },
      projector,
      hub,
      clients,
      opened: connected.opened,
      pids: () => ({
        'minipush(projector)': projector.pid,
        'minipush(hub)': hub.pid,
        'ws clients+publisher': clients.pid,
        ...servicePids(),
      }),
      async close() {
        await clients.ask({ type: 'close' }, 'closed', 60_000).catch(() => undefined);
        await clients.stop();
        for (const server of servers) await server.stop();
        await deployment.destroy();
      },
    };
  } catch (err) {
    await clients.stop();
    for (const server of servers) await server.stop();
    await deployment.destroy();
    throw err;
  }
}

export const nudge: Benchmark = {
  name: 'nudge',
  description: 'publish → head nudge latency at 1,000 events/s with 10,000 live sessions',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 10 : 30;
    const rate = 1000;
    const stack = await hubStack(ctx, 10_000, 1);
    try {
      const window = cpuWindow(stack.pids());
      const result = await stack.clients.ask<Record<string, number> & { type: string }>(
        { type: 'latency', rate, seconds, settleMs: 3000, via: stack.via },
        'latency',
        (seconds + 60) * 1000,
      );
      const cpu = window.stop();
      const sentNudges = await scrapeMetric(stack.hub.url!, 'minipush_nudges_sent_total');
      // Where the time goes, from the processes' own histograms (means over the run).
      const mean = async (url: string, name: string) =>
        (await scrapeMetric(url, `${name}_sum`)) /
        Math.max(1, await scrapeMetric(url, `${name}_count`));
      const breakdown = {
        projectorBatchMs:
          1000 * (await mean(stack.projector.url!, 'minipush_projector_batch_duration_seconds')),
        projectorBatchRecords: await mean(stack.projector.url!, 'minipush_projector_batch_records'),
        logTimeToNudgeSentMs:
          1000 * (await mean(stack.hub.url!, 'minipush_publish_to_nudge_seconds')),
      };
      ctx.log(`nudge breakdown: ${JSON.stringify(breakdown)}`);
      const conditions = `kafka+mariadb, projector and hub processes, ${stack.opened.toLocaleString('en-US')} sessions (1 per user), ${rate} events/s by Kafka producer for ${seconds} s`;
      const rows: Row[] = [
        {
          metric: 'publish → head p50',
          value: result.p50!,
          unit: 'ms',
          ...atMost(result.p50!, 10),
          conditions,
        },
        {
          metric: 'publish → head p99',
          value: result.p99!,
          unit: 'ms',
          ...atMost(result.p99!, 50),
          conditions,
        },
        {
          metric: 'publish → head p99.9',
          value: result['p99.9']!,
          unit: 'ms',
          ...info(),
          conditions,
        },
        {
          metric: 'nudges received ÷ events published',
          value: result.received! / result.sent!,
          unit: '',
          ...atLeast(result.received! / result.sent!, 0.999),
          conditions: `${result.received} of ${result.sent}`,
        },
      ];
      return { rows, details: { result, cpu, hubNudgesSent: sentNudges, breakdown } };
    } finally {
      await stack.close();
    }
  },
};

export const fanout: Benchmark = {
  name: 'fanout',
  description: 'nudges delivered per second to live sessions (2,000 users × 5 sessions)',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 10 : 30;
    const users = 2000;
    const perUser = 5;
    const rate = 12;
    const stack = await hubStack(ctx, users * perUser, perUser);
    try {
      const before = await deliveredSoFar([stack.clients]);
      const timeoutMs = (seconds + 60) * 1000;
      // Count over the publishing window only: no credit for a backlog drained afterwards.
      const endToEnd = await deliveryWindow(
        [stack.clients],
        stack.pids(),
        { type: 'fanout', rate, seconds, via: stack.via },
        'fanout',
        timeoutMs,
      );
      await sleep(3000);
      const settled = await deliveredSoFar([stack.clients]);
      const perSecond = endToEnd.perSecond;
      const sent = Number(endToEnd.answers[0]!.sent);
      const offered = sent * users * perUser;
      const conditions = `kafka+mariadb, projector and hub processes, ${users.toLocaleString('en-US')} users × ${perUser} sessions, ${rate} events/s to all users for ${seconds} s (offered ${Math.round(offered / seconds).toLocaleString('en-US')} nudges/s)`;
      // The hub alone: the load process plays the projector and produces head changes for every
      // user straight to the heads topic, 10 rounds a second (above the projector's pace).
      const headRate = 10;
      const hubAlone = await deliveryWindow(
        [stack.clients],
        stack.pids(),
        {
          type: 'fanout',
          rate: headRate,
          seconds,
          via: {
            kind: 'heads',
            brokers: stack.via.brokers,
            topic: `${stack.deployment.config.topicPrefix}.heads`,
          },
        },
        'fanout',
        timeoutMs,
      );
      const hubPerSecond = hubAlone.perSecond;
      const rows: Row[] = [
        {
          metric: 'nudges delivered/s, hub alone',
          value: hubPerSecond,
          unit: '/s',
          ...atLeast(hubPerSecond, 50_000),
          conditions: `one hub process, ${users.toLocaleString('en-US')} users × ${perUser} sessions, head changes for every user produced to <prefix>.heads ${headRate} rounds/s for ${seconds} s (offered ${(headRate * users * perUser).toLocaleString('en-US')} nudges/s)`,
        },
        {
          metric: 'nudges delivered/s, publish → projector → hub',
          value: perSecond,
          unit: '/s',
          ...atLeast(perSecond, 50_000),
          conditions,
        },
        {
          metric: 'nudges received ÷ offered (after 3 s settle)',
          value: (settled - before) / offered,
          unit: '',
          ...info(),
          conditions: 'below 1 when the 50 ms nudge window merged head changes',
        },
      ];
      return {
        rows,
        details: {
          sent,
          before,
          settled,
          elapsed: endToEnd.seconds,
          cpu: endToEnd.cpu,
          endToEnd,
          hubAlone,
        },
      };
    } finally {
      await stack.close();
    }
  },
};
