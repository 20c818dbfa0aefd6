import type { BenchContext, Benchmark, Outcome } from './lib/context.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killAllChildren, LoadProcess } from './lib/child.js';
import { cpuWindow, servicePids, type CpuReport } from './lib/cpu.js';
import { deliveredSoFar, deliveryWindow } from './lib/deliveries.js';
import {
  JWT_SECRET,
  kafkaDeployment,
  killAllServers,
  scrapeMetric,
  spawnServer,
  type Deployment,
  type ServerProcess,
} from './lib/deployment.js';
import type { PublishVia } from './lib/protocols.js';
import { RESULTS_DIR, atLeast, atMost, info, type Row } from './lib/result.js';
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
  hubOptions: { bin?: string; workers?: number; projectorBin?: string } = {},
): Promise<HubStack> {
  const services = await ctx.services();
  const deployment = await kafkaDeployment(services, { partitions: 8 });
  const servers: ServerProcess[] = [];
  const clients = new LoadProcess('ws-clients');
  try {
    const projector = await spawnServer(deployment.env(['projector']), {
      label: 'projector',
      ...(hubOptions.projectorBin ? { bin: hubOptions.projectorBin } : {}),
    });
    servers.push(projector);
    const hub = await spawnServer(
      {
        ...deployment.env(['hub']),
        ...(hubOptions.workers ? { MINIPUSH_HUB_WORKERS: String(hubOptions.workers) } : {}),
      },
      { label: 'hub', ...(hubOptions.bin ? { bin: hubOptions.bin } : {}) },
    );
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
        `only ${connected.opened} of ${sessions} sessions opened: ${connected.errors.join('; ')}\n${hub.problems()}`,
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
  description:
    'publish → head nudge latency at 1,000 events/s with 10,000 live sessions (with --baseline, its projector first)',
  async run(ctx): Promise<Outcome> {
    const seconds = ctx.quick ? 10 : 30;
    const rate = 1000;
    const variants = [
      ...(ctx.baseline
        ? [{ label: 'before', projectorBin: path.join(ctx.baseline, 'dist/src/bin.js') }]
        : []),
      { label: 'this build' },
    ];
    const rows: Row[] = [];
    const details: Record<string, unknown> = {};
    const p50s: Record<string, number> = {};
    for (const variant of variants) {
      const stack = await hubStack(ctx, 10_000, 1, variant);
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
          projectorBatchRecords: await mean(
            stack.projector.url!,
            'minipush_projector_batch_records',
          ),
          logTimeToNudgeSentMs:
            1000 * (await mean(stack.hub.url!, 'minipush_publish_to_nudge_seconds')),
          projectorRecordWaitMs:
            1000 * (await mean(stack.projector.url!, 'minipush_projector_record_wait_seconds')),
          projectorPhaseMs: await phaseMeans(stack.projector.url!),
        };
        ctx.log(`nudge ${variant.label} breakdown: ${JSON.stringify(breakdown)}`);
        // The whole histograms, for the tails the means hide.
        for (const [role, url] of [
          ['projector', stack.projector.url!],
          ['hub', stack.hub.url!],
        ] as const) {
          const name = `nudge-${variant.label.replace(/\W+/g, '-')}-${role}.metrics.txt`;
          fs.mkdirSync(RESULTS_DIR, { recursive: true });
          fs.writeFileSync(
            path.join(RESULTS_DIR, name),
            await (await fetch(`${url}/metrics`)).text(),
          );
        }
        const projector = variant.projectorBin ? `projector of ${ctx.baseline}` : 'this build';
        const conditions = `${projector}; kafka+mariadb, projector and hub processes, ${stack.opened.toLocaleString('en-US')} sessions (1 per user), ${rate} events/s by Kafka producer for ${seconds} s; projector CPU ${cpu.processes['minipush(projector)'] ?? '?'} %`;
        const label = variant.label === 'this build' ? '' : ` (${variant.label})`;
        p50s[variant.label] = result.p50!;
        rows.push(
          {
            metric: `publish → head p50${label}`,
            value: result.p50!,
            unit: 'ms',
            ...(label ? info() : atMost(result.p50!, 5)),
            conditions,
          },
          {
            metric: `publish → head p99${label}`,
            value: result.p99!,
            unit: 'ms',
            ...(label ? info() : atMost(result.p99!, 25)),
            conditions,
          },
          {
            metric: `publish → head p99.9${label}`,
            value: result['p99.9']!,
            unit: 'ms',
            ...info(),
            conditions,
          },
          {
            metric: `nudges received ÷ events published${label}`,
            value: result.received! / result.sent!,
            unit: '',
            ...atLeast(result.received! / result.sent!, 0.999),
            conditions: `${result.received} of ${result.sent}`,
          },
        );
        details[variant.label] = { result, cpu, hubNudgesSent: sentNudges, breakdown };
      } finally {
        await stack.close();
      }
    }
    if (p50s.before !== undefined) {
      rows.push({
        metric: 'publish → head p50, before ÷ this build',
        value: p50s.before / p50s['this build']!,
        unit: '×',
        ...info(),
        conditions: 'one run, the same load, each variant on a fresh stack',
      });
    }
    return { rows, details };
  },
};

/** Mean ms per batch of each projector phase (minipush_projector_batch_phase_seconds). */
async function phaseMeans(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  const line = /^minipush_projector_batch_phase_seconds_(sum|count)\{phase="(\w+)"\} (\S+)$/;
  for (const row of text.split('\n')) {
    const match = line.exec(row);
    if (!match) continue;
    (match[1] === 'sum' ? sums : counts).set(match[2]!, Number(match[3]));
  }
  return Object.fromEntries(
    [...sums].map(([phase, sum]) => [phase, (1000 * sum) / Math.max(1, counts.get(phase) ?? 0)]),
  );
}

/** A hub build and shape the fan-out benchmark runs. */
interface HubVariant {
  readonly label: string;
  /** `dist/src/bin.js` of another build (the baseline: its hub and projector), or this one's. */
  readonly bin?: string;
  readonly workers: number;
}

interface VariantFigures {
  readonly label: string;
  readonly hubAlonePerSecond: number;
  /** Hub CPU (its workers included, user + kernel) per nudge delivered, hub alone, in µs. */
  readonly hubCpuPerNudgeUs: number;
  readonly endToEndPerSecond: number;
  readonly hubAloneCpu: CpuReport;
  readonly endToEndCpu: CpuReport;
  readonly receivedRatio: number;
}

/** "hub 98% (usr 40/sys 58), ws clients 60%, …; box 99% busy", for a conditions column. */
function cpuSplit(cpu: CpuReport): string {
  const parts = Object.entries(cpu.processes)
    .filter(([, percent]) => percent >= 3)
    .map(([label, percent]) => {
      const split = cpu.split[label];
      const name = label.replace(/^minipush\((.*)\)$/, '$1');
      return split
        ? `${name} ${percent}% (usr ${split.user}/sys ${split.sys})`
        : `${name} ${percent}%`;
    });
  return `CPU in % of a core: ${parts.join(', ')}; box ${cpu.systemBusyPercent}% busy of ${cpu.cores} cores`;
}

/**
 * Head rounds a second when the load process plays the projector: 62.5 ms apart, past the
 * 50 ms nudge window, so each is a nudge to every session (offered 160,000 nudges/s).
 */
const HEAD_ROUNDS = 16;

/** The fan-out phases on one fresh stack: through the projector, then the hub alone. */
async function fanoutVariant(ctx: BenchContext, variant: HubVariant): Promise<VariantFigures> {
  const seconds = ctx.quick ? 10 : 30;
  const users = 2000;
  const perUser = 5;
  const rate = 12;
  // A baseline hub runs with its own build's projector: the heads records are theirs.
  const stack = await hubStack(ctx, users * perUser, perUser, {
    ...(variant.bin ? { bin: variant.bin, projectorBin: variant.bin } : {}),
    ...(variant.workers > 1 ? { workers: variant.workers } : {}),
  });
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
    const offered = Number(endToEnd.answers[0]!.sent) * users * perUser;
    ctx.log(`fanout ${variant.label}: the hub alone, head changes straight to the heads topic`);
    const hubAlone = await deliveryWindow(
      [stack.clients],
      stack.pids(),
      {
        type: 'fanout',
        rate: HEAD_ROUNDS,
        seconds,
        via: {
          kind: 'heads',
          brokers: stack.via.brokers,
          topic: `${stack.deployment.config.topicPrefix}.heads`,
          // A baseline is a build from before projectors batched head changes.
          ...(variant.bin ? { perUser: true } : {}),
        },
      },
      'fanout',
      timeoutMs,
    );
    const hubSeconds = hubAlone.cpu.cpuSeconds['minipush(hub)'];
    if (hubSeconds === undefined) {
      const { exitCode, signalCode } = stack.hub.child;
      throw new Error(
        `the hub was gone by the end of its window (exit ${exitCode ?? signalCode})\n${stack.hub.problems()}`,
      );
    }
    const figures: VariantFigures = {
      label: variant.label,
      hubAlonePerSecond: hubAlone.perSecond,
      hubCpuPerNudgeUs: (hubSeconds / hubAlone.delivered) * 1e6,
      endToEndPerSecond: endToEnd.perSecond,
      hubAloneCpu: hubAlone.cpu,
      endToEndCpu: endToEnd.cpu,
      receivedRatio: (settled - before) / offered,
    };
    ctx.log(
      `fanout ${variant.label}: hub alone ${Math.round(figures.hubAlonePerSecond)}/s at ` +
        `${figures.hubCpuPerNudgeUs.toFixed(1)} µs/nudge; end to end ${Math.round(figures.endToEndPerSecond)}/s`,
    );
    return figures;
  } finally {
    await stack.close();
  }
}

export const fanout: Benchmark = {
  name: 'fanout',
  description:
    'nudges delivered per second to live sessions (2,000 users × 5 sessions), per hub variant',
  async run(ctx): Promise<Outcome> {
    const cores = os.availableParallelism();
    const variants: HubVariant[] = [
      ...(ctx.baseline
        ? [{ label: 'before', bin: path.join(ctx.baseline, 'dist/src/bin.js'), workers: 1 }]
        : []),
      { label: '1 worker', workers: 1 },
      ...(cores > 1 ? [{ label: `${cores} workers`, workers: cores }] : []),
    ].filter((v) => ctx.only === null || v.label.includes(ctx.only));
    const figures: VariantFigures[] = [];
    const failed: string[] = [];
    for (const variant of variants) {
      try {
        figures.push(await fanoutVariant(ctx, variant));
      } catch (err) {
        // One variant's failure (a load process starved on a busy box) keeps the others' rows.
        ctx.log(
          `fanout ${variant.label} FAILED: ${err instanceof Error ? err.message : String(err)}`,
        );
        failed.push(variant.label);
        killAllChildren();
        killAllServers();
      }
    }
    if (figures.length === 0) throw new Error(`every fanout variant failed: ${failed.join(', ')}`);
    const seconds = ctx.quick ? 10 : 30;
    const baseline = figures.find((f) => f.label === 'before');
    const best = figures.reduce<VariantFigures | null>(
      (a, b) => (a === null || b.hubAlonePerSecond > a.hubAlonePerSecond ? b : a),
      null,
    );
    const rows: Row[] = [];
    for (const f of figures) {
      const hubConditions =
        `${f.label === 'before' ? `hub of ${ctx.baseline}` : 'this build'}, ` +
        `one hub deployment (${f.label}), 2,000 users × 5 sessions, head changes for every user ` +
        `produced to <prefix>.heads ${HEAD_ROUNDS} rounds/s for ${seconds} s ` +
        `(offered ${(HEAD_ROUNDS * 10_000).toLocaleString('en-US')} nudges/s); ${cpuSplit(f.hubAloneCpu)}`;
      const isBest = f === best && f.label !== 'before';
      rows.push(
        {
          metric: `nudges delivered/s, hub alone [${f.label}]`,
          value: f.hubAlonePerSecond,
          unit: '/s',
          ...(isBest ? atLeast(f.hubAlonePerSecond, 130_000) : info()),
          conditions: hubConditions,
        },
        {
          metric: `hub CPU per nudge, hub alone [${f.label}]`,
          value: f.hubCpuPerNudgeUs,
          unit: 'µs',
          ...(f.label === 'before' ? info() : atMost(f.hubCpuPerNudgeUs, 8)),
          conditions: 'user + kernel time of the hub process and its workers ÷ nudges delivered',
        },
        {
          metric: `nudges delivered/s, publish → projector → hub [${f.label}]`,
          value: f.endToEndPerSecond,
          unit: '/s',
          ...(isBest ? atLeast(f.endToEndPerSecond, 80_000) : info()),
          conditions: `kafka+mariadb, projector and hub processes, 12 events/s to all 2,000 users for ${seconds} s; received ÷ offered ${f.receivedRatio.toFixed(3)}; ${cpuSplit(f.endToEndCpu)}`,
        },
      );
    }
    if (baseline) {
      for (const f of figures) {
        if (f === baseline) continue;
        rows.push({
          metric: `hub alone nudges/s, ${f.label} ÷ before`,
          value: f.hubAlonePerSecond / baseline.hubAlonePerSecond,
          unit: '×',
          ...info(),
          conditions: `CPU per nudge ${baseline.hubCpuPerNudgeUs.toFixed(1)} → ${f.hubCpuPerNudgeUs.toFixed(1)} µs`,
        });
      }
    }
    return { rows, details: { variants: figures, failed } };
  },
};
