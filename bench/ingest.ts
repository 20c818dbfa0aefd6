import path from 'node:path';
import type { BenchContext, Benchmark, Outcome } from './lib/context.js';
import { LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids, type CpuReport } from './lib/cpu.js';
import {
  API_KEY,
  embeddedDeployment,
  kafkaDeployment,
  scrapeMetric,
  spawnServer,
  type Deployment,
  type ServerProcess,
} from './lib/deployment.js';
import { atLeast, info, type Row } from './lib/result.js';
import { sleep } from './lib/stats.js';

const USERS = 100_000;

interface RunSpec {
  readonly backend: 'kafka+mariadb' | 'embedded';
  readonly recipients: number;
  readonly seconds: number;
  readonly warmupSeconds: number;
  readonly target: number;
  /** Another build's `dist/src/bin.js` (the baseline), or this one's. */
  readonly bin?: string;
}

interface RunOutcome {
  readonly spec: RunSpec;
  readonly sustained: number;
  readonly endToEnd: number;
  readonly produced: number;
  readonly drainSeconds: number;
  readonly cpu: CpuReport | null;
  readonly samples: Array<[number, number]>;
}

const DELIVERIES = 'minipush_projector_deliveries_total';

/** "server 45.1 µs, mariadb 22.0 µs CPU per delivery": the CPU window over the deliveries in it. */
function serverCpuPerDelivery(outcome: RunOutcome): string {
  const cpu = outcome.cpu;
  if (!cpu || outcome.sustained <= 0) return 'no CPU window';
  const deliveries = outcome.sustained * cpu.seconds;
  const parts = Object.entries(cpu.cpuSeconds)
    .filter(([name]) => name.startsWith('minipush') || name === 'mariadb')
    .map(([name, seconds]) => `${name} ${((seconds / deliveries) * 1e6).toFixed(1)} µs`);
  return `CPU per delivery: ${parts.join(', ')}`;
}

/**
 * Publishes for `seconds`, keeping the backlog near two seconds of what the projector manages,
 * and measures projected deliveries per second after the warm-up; then drains.
 */
async function runOnce(ctx: BenchContext, spec: RunSpec): Promise<RunOutcome> {
  let deployment: Deployment | null = null;
  const servers: ServerProcess[] = [];
  const publisher = new LoadProcess('publisher');
  try {
    let metricsUrl: string;
    if (spec.backend === 'kafka+mariadb') {
      const services = await ctx.services();
      deployment = await kafkaDeployment(services, { partitions: 8, mysqlPoolSize: 10 });
      const projector = await spawnServer(deployment.env(['projector']), {
        label: 'projector',
        ...(spec.bin ? { bin: spec.bin } : {}),
      });
      servers.push(projector);
      metricsUrl = projector.url!;
      await publisher.ask(
        {
          type: 'setup',
          setup: {
            mode: 'kafka',
            brokers: services.kafkaBrokers,
            topicPrefix: deployment.config.topicPrefix,
            recipients: spec.recipients,
            users: USERS,
            firstUid: 1,
            batchEvents: spec.recipients === 1 ? 1000 : 20,
            concurrency: 2,
            durationMs: spec.seconds * 1000,
          },
        },
        'ready',
      );
    } else {
      deployment = embeddedDeployment({ partitions: 8 });
      const server = await spawnServer(deployment.env(['api', 'projector']), {
        label: 'embedded',
        ...(spec.bin ? { bin: spec.bin } : {}),
      });
      servers.push(server);
      metricsUrl = server.url!;
      await publisher.ask(
        {
          type: 'setup',
          setup: {
            mode: 'rest',
            url: server.url,
            apiKey: API_KEY,
            recipients: spec.recipients,
            users: USERS,
            firstUid: 1,
            batchEvents: 1,
            concurrency: spec.recipients === 1 ? 64 : 8,
            durationMs: spec.seconds * 1000,
          },
        },
        'ready',
      );
    }
    const pids: Record<string, number> = {
      [spec.backend === 'embedded' ? 'minipush(api+projector)' : 'minipush(projector)']:
        servers[0]!.pid,
      publisher: publisher.pid,
      ...(spec.backend === 'kafka+mariadb' ? servicePids() : {}),
    };

    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    publisher.send({ type: 'allow', deliveries: 20_000 });
    publisher.send({ type: 'start' });
    const done = publisher.next<{ type: 'done'; deliveries: number; events: number }>(
      'done',
      (spec.seconds + 60) * 1000,
    );
    const samples: Array<[number, number]> = [];
    let window: ReturnType<typeof cpuWindow> | null = null;
    let from: [number, number] | null = null;
    let to: [number, number] | null = null;
    let rate = 0;
    while (elapsed() < spec.seconds) {
      await sleep(500);
      const projected = await scrapeMetric(metricsUrl, DELIVERIES);
      const t = elapsed();
      const last = samples[samples.length - 1];
      samples.push([Math.round(t * 1000) / 1000, projected]);
      if (last && t > last[0]) rate = 0.7 * rate + (0.3 * (projected - last[1])) / (t - last[0]);
      publisher.send({
        type: 'allow',
        deliveries: projected + Math.max(20_000, Math.round(rate * 2)),
      });
      if (!from && t >= spec.warmupSeconds) {
        from = [t, projected];
        window = cpuWindow(pids);
      }
      to = [t, projected];
    }
    const cpu = window?.stop() ?? null;
    publisher.send({ type: 'stop' });
    const sent = await done;
    const drainStart = performance.now();
    let projected = 0;
    while (performance.now() - drainStart < 120_000) {
      projected = await scrapeMetric(metricsUrl, DELIVERIES);
      if (projected >= sent.deliveries) break;
      await sleep(200);
    }
    const drainSeconds = (performance.now() - drainStart) / 1000;
    if (projected < sent.deliveries) {
      throw new Error(`only ${projected} of ${sent.deliveries} deliveries projected after 120 s`);
    }
    const sustained = from && to && to[0] > from[0] ? (to[1] - from[1]) / (to[0] - from[0]) : 0;
    ctx.log(
      `ingest ${spec.backend} ${spec.recipients} recipient(s)${spec.bin ? ' (before)' : ''}: ` +
        `${Math.round(sustained)}/s sustained, ` +
        `${sent.deliveries} deliveries, drained in ${drainSeconds.toFixed(1)} s`,
    );
    return {
      spec,
      sustained,
      endToEnd: sent.deliveries / elapsed(),
      produced: sent.deliveries,
      drainSeconds,
      cpu,
      samples,
    };
  } finally {
    await publisher.ask({ type: 'close' }, 'closed', 30_000).catch(() => undefined);
    await publisher.stop();
    for (const server of servers) await server.stop();
    await deployment?.destroy();
  }
}

export const ingest: Benchmark = {
  name: 'ingest',
  description: 'deliveries per second from publish to projected rows, sustained',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 15 : 60;
    const warmupSeconds = ctx.quick ? 4 : 8;
    const specs: RunSpec[] = [
      { backend: 'kafka+mariadb', recipients: 1, seconds, warmupSeconds, target: 30_000 },
      { backend: 'kafka+mariadb', recipients: 100, seconds, warmupSeconds, target: 40_000 },
      { backend: 'embedded', recipients: 1, seconds, warmupSeconds, target: 10_000 },
      { backend: 'embedded', recipients: 100, seconds, warmupSeconds, target: 5_000 },
    ];
    const rows: Row[] = [];
    const runs: RunOutcome[] = [];
    const label = (spec: RunSpec) => `${spec.backend.split('+')[0]}/${spec.recipients}`;
    const baselineBin = ctx.baseline ? path.join(ctx.baseline, 'dist/src/bin.js') : null;
    for (const spec of specs.filter((s) => ctx.only === null || label(s).includes(ctx.only))) {
      const measured = spec.seconds - spec.warmupSeconds;
      const metric = `deliveries/s, ${spec.recipients} recipient${spec.recipients > 1 ? 's' : ''}/event`;
      const conditions = `${spec.backend}, 8 partitions, ${USERS.toLocaleString('en-US')} users, ${measured} s after ${spec.warmupSeconds} s warm-up, ${spec.backend === 'embedded' ? 'REST load' : 'Kafka producer load'}`;
      // With a baseline, its server runs first, then this build's, each on a fresh stack.
      const before = baselineBin ? await runOnce(ctx, { ...spec, bin: baselineBin }) : null;
      const outcome = await runOnce(ctx, spec);
      if (before) {
        runs.push(before);
        rows.push({
          metric: `${metric} (before)`,
          value: before.sustained,
          unit: '/s',
          ...info(),
          conditions: `server of ${ctx.baseline}; ${conditions}; ${serverCpuPerDelivery(before)}`,
        });
      }
      runs.push(outcome);
      rows.push({
        metric,
        value: outcome.sustained,
        unit: '/s',
        ...atLeast(outcome.sustained, spec.target),
        conditions: `${conditions}; ${serverCpuPerDelivery(outcome)}`,
      });
      if (before && before.sustained > 0) {
        rows.push({
          metric: `${metric}, this build ÷ before`,
          value: outcome.sustained / before.sustained,
          unit: '×',
          ...info(),
          conditions: 'one run, the same load, each on a fresh stack, the baseline first',
        });
      }
    }
    rows.push({
      metric: 'longest drain after the load stops',
      value: Math.max(...runs.map((r) => r.drainSeconds)),
      unit: 's',
      ...info(),
      conditions: 'the backlog is kept near 2 s of throughput',
    });
    return { rows, details: { runs } };
  },
};
