/**
 * `peers`: MiniPush side by side with what users would run instead — Centrifugo for the
 * realtime half — on the same box in the same run, driven by the same WebSocket load program
 * (bench/load/ws-clients.ts, one small adapter per protocol).
 */
import type { BenchContext, Benchmark, Outcome } from './lib/context.js';
import { LoadProcess, type Message } from './lib/child.js';
import {
  CENTRIFUGO_VERSION,
  HISTORY,
  centrifugoBinary,
  startCentrifugo,
} from './lib/centrifugo.js';
import { cpuWindow, rssBytes, servicePids, settledRss, type CpuReport } from './lib/cpu.js';
import { deliveryWindow } from './lib/deliveries.js';
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
import type { ProtocolName, PublishVia } from './lib/protocols.js';
import { fmt, info, type Row } from './lib/result.js';
import { sleep } from './lib/stats.js';

/** Sessions added at each step of the idle test: one process then holds 5k, 10k, 19k. */
const IDLE_STEPS = [5_000, 5_000, 9_000] as const;
const FANOUT = { users: 2_000, perUser: 5, processes: 2, rates: [10, 20] } as const;
const LATENCY = { sessions: 10_000, rate: 1_000 } as const;
/** Each test's users apart, so no session quota sees another test's leftovers. */
const FIRST_UID = { idle: 1, fanout: 100_001, latency: 200_001 } as const;
/** % of one core: a load process above it may be what limits the figure. */
const SATURATED = 90;

interface Windows {
  readonly idleSeconds: number;
  readonly fanoutSeconds: number;
  readonly latencySeconds: number;
}

let addressesHanded = 0;

/**
 * Two source addresses no earlier test of this run used (127.1.x.y): each client process binds
 * its sockets to them, so ports left in TIME_WAIT by a closed test never run a new one short.
 */
function freshAddresses(): string[] {
  return [0, 1].map(() => {
    const n = addressesHanded++;
    return `127.1.${Math.floor(n / 250)}.${(n % 250) + 1}`;
  });
}

/** A server under test: where sessions connect, who holds them, and how to publish to it. */
interface System {
  readonly name: string;
  readonly protocol: ProtocolName;
  readonly wsUrl: string;
  /** The process holding the sessions; its RSS gives the memory per session. */
  readonly sessionPid: number;
  /** That process's label in `pids`. */
  readonly sessionLabel: string;
  /** The server side's processes, labelled for the CPU split (Kafka and MariaDB included). */
  readonly pids: Record<string, number>;
  /** How a business server publishes one event to one user. */
  readonly via: PublishVia;
  /** Resolves once work published earlier is done (MiniPush's projector backlog). */
  drained(): Promise<void>;
  stop(): Promise<void>;
}

/** The ws-clients processes of one test. */
class Clients {
  readonly processes: LoadProcess[] = [];

  constructor(
    private readonly ctx: BenchContext,
    private readonly system: System,
  ) {}

  /** One more process holding `count` sessions, `perUser` per user from `firstUid` on. */
  async add(count: number, firstUid: number, perUser: number): Promise<void> {
    const client = new LoadProcess('ws-clients');
    this.processes.push(client);
    await client.ask(
      {
        type: 'setup',
        setup: {
          secret: JWT_SECRET,
          protocol: this.system.protocol,
          targets: [
            {
              url: this.system.wsUrl,
              count,
              firstUid,
              sessionsPerUid: perUser,
              localAddresses: freshAddresses(),
            },
          ],
          connectConcurrency: 200,
        },
      },
      'ready',
    );
    const connected = await client.ask<Message & { opened: number; seconds: number }>(
      { type: 'connect' },
      'connected',
      600_000,
    );
    this.ctx.log(
      `${this.system.name}: ${connected.opened} sessions in ${connected.seconds.toFixed(1)} s`,
    );
    if (connected.opened < count) {
      throw new Error(
        `${this.system.name}: only ${connected.opened} of ${count} sessions opened: ${String(connected.errors)}`,
      );
    }
  }

  pids(): Record<string, number> {
    return Object.fromEntries(this.processes.map((p, i) => [`ws clients ${i + 1}`, p.pid]));
  }

  /** Sessions still up and those the server closed, over all processes. */
  async sessions(): Promise<{ up: number; closed: number; closeCodes: Message[] }> {
    const counts = await Promise.all(this.processes.map((p) => p.ask({ type: 'count' }, 'counts')));
    const closed = counts.reduce((sum, c) => sum + Number(c.closedUnexpectedly), 0);
    const up = counts.reduce((sum, c) => sum + Number(c.sessions), 0) - closed;
    return { up, closed, closeCodes: counts.map((c) => c.closeCodes as Message) };
  }

  async stop(): Promise<void> {
    for (const p of this.processes) {
      await p.ask({ type: 'close' }, 'closed', 60_000).catch(() => undefined);
      await p.stop();
    }
  }
}

/** A figure of one system, with the CPU of every process while it was measured. */
interface Figure {
  readonly values: readonly number[];
  readonly cpu: CpuReport;
  /** The load generators' labels in `cpu`. */
  readonly load: readonly string[];
  /** Set when the publishing fell behind its schedule (e.g. `96 of 120 rounds`). */
  readonly behind?: string;
  readonly details?: Record<string, unknown>;
}

/** Runs `use` on what `open` gives, and stops it afterwards whatever happened. */
async function holding<R extends { stop(): Promise<void> }, T>(
  open: () => Promise<R> | R,
  use: (held: R) => Promise<T>,
): Promise<T> {
  const held = await open();
  try {
    return await use(held);
  } finally {
    await held.stop();
  }
}

function withClients<T>(
  ctx: BenchContext,
  system: System,
  use: (clients: Clients) => Promise<T>,
): Promise<T> {
  return holding(() => new Clients(ctx, system), use);
}

interface Idle {
  readonly held: Figure;
  readonly kibPerSession: Figure;
  readonly cpuPercent: Figure;
}

/** Idle sessions on one process: memory per session at each step, then CPU over a ping period. */
function idle(ctx: BenchContext, system: System, windows: Windows): Promise<Idle> {
  return withClients(ctx, system, async (clients) => {
    await sleep(3000);
    const baseline = rssBytes(system.sessionPid);
    const rss: number[] = [];
    const kib: number[] = [];
    let opened = 0;
    for (const count of IDLE_STEPS) {
      await clients.add(count, FIRST_UID.idle + opened, 1);
      opened += count;
      rss.push(await settledRss(system.sessionPid));
      kib.push((rss.at(-1)! - baseline) / opened / 1024);
      ctx.log(`${system.name}: ${opened} idle sessions, ${fmt(kib.at(-1)!)} KiB each`);
    }
    const window = cpuWindow({ ...system.pids, ...clients.pids() });
    await sleep(windows.idleSeconds * 1000);
    const cpu = window.stop();
    const sessions = await clients.sessions();
    const load = Object.keys(clients.pids());
    const details = { baseline, rss, steps: IDLE_STEPS, ...sessions };
    return {
      held: { values: [sessions.up], cpu, load, details },
      kibPerSession: { values: kib, cpu, load, details },
      cpuPercent: { values: [cpu.processes[system.sessionLabel] ?? NaN], cpu, load },
    };
  });
}

/** Fan-out: `rate` rounds a second, each one event to each of 2,000 users (5 sessions each). */
function fanout(
  ctx: BenchContext,
  system: System,
  variants: ReadonlyArray<{ readonly label: string; readonly via: PublishVia }>,
  windows: Windows,
): Promise<Record<string, Figure[]>> {
  return withClients(ctx, system, async (clients) => {
    const perProcess = FANOUT.users / FANOUT.processes;
    for (let i = 0; i < FANOUT.processes; i++) {
      await clients.add(
        perProcess * FANOUT.perUser,
        FIRST_UID.fanout + i * perProcess,
        FANOUT.perUser,
      );
    }
    await sleep(2000);
    const out: Record<string, Figure[]> = {};
    for (const variant of variants) {
      out[variant.label] = [];
      for (const rate of FANOUT.rates) {
        // Each process publishes to its own users: together, one round reaches every user.
        const window = await deliveryWindow(
          clients.processes,
          { ...system.pids, ...clients.pids() },
          { type: 'fanout', rate, seconds: windows.fanoutSeconds, via: variant.via },
          'fanout',
          (windows.fanoutSeconds + 120) * 1000,
        );
        await system.drained();
        await sleep(2000);
        const sessions = await clients.sessions();
        const offered = rate * FANOUT.users * FANOUT.perUser;
        const rounds = window.answers.reduce((sum, a) => sum + Number(a.sent), 0);
        const scheduled = rate * windows.fanoutSeconds * FANOUT.processes;
        ctx.log(
          `${system.name}, ${variant.label}, ${rate} rounds/s: ${Math.round(window.perSecond)} deliveries/s of ${offered} offered; ${sessions.closed} sessions closed by the server`,
        );
        out[variant.label]!.push({
          values: [window.perSecond],
          cpu: window.cpu,
          load: Object.keys(clients.pids()),
          ...(rounds < 0.95 * scheduled ? { behind: `${rounds} of ${scheduled} rounds` } : {}),
          details: {
            rate,
            offered,
            delivered: window.delivered,
            seconds: window.seconds,
            rounds: window.answers.map((a) => a.sent),
            publishErrors: window.after.map((a) => a.publishErrors),
            ...sessions,
          },
        });
      }
    }
    return out;
  });
}

/** Publish → delivery at 1,000 events/s, round-robin over 10,000 users with a session each. */
function latency(ctx: BenchContext, system: System, windows: Windows): Promise<Figure> {
  return withClients(ctx, system, async (clients) => {
    await clients.add(LATENCY.sessions, FIRST_UID.latency, 1);
    await sleep(2000);
    const window = cpuWindow({ ...system.pids, ...clients.pids() });
    const result = await clients.processes[0]!.ask<Message & Record<string, number>>(
      {
        type: 'latency',
        rate: LATENCY.rate,
        seconds: windows.latencySeconds,
        settleMs: 3000,
        via: system.via,
      },
      'latency',
      (windows.latencySeconds + 60) * 1000,
    );
    const cpu = window.stop();
    const sessions = await clients.sessions();
    ctx.log(
      `${system.name}: publish → delivery p50 ${fmt(result.p50!)} ms, p99 ${fmt(result.p99!)} ms, ${result.received} of ${result.sent} timed`,
    );
    return {
      values: [result.p50!, result.p99!, result['p99.9']!],
      cpu,
      load: Object.keys(clients.pids()),
      details: { ...result, ...sessions },
    };
  });
}

async function centrifugo(binary: string, history: boolean): Promise<System> {
  const server = await startCentrifugo(binary, { history });
  return {
    name: history ? 'Centrifugo with history' : 'Centrifugo',
    protocol: 'centrifugo',
    wsUrl: server.wsUrl,
    sessionPid: server.pid,
    sessionLabel: 'centrifugo',
    pids: { centrifugo: server.pid, ...servicePids() },
    via: { kind: 'centrifugo', url: server.url, apiKey: server.apiKey },
    drained: () => Promise.resolve(),
    stop: () => server.stop(),
  };
}

function wsUrl(server: ServerProcess): string {
  return `${server.url!.replace(/^http/, 'ws')}/v1/ws`;
}

/** MiniPush's zero-setup default: every role in one process on SQLite and the embedded log. */
async function embedded(): Promise<System> {
  const deployment = embeddedDeployment();
  try {
    const server = await spawnServer(deployment.env(['api', 'hub', 'projector', 'cleaner']), {
      label: 'embedded',
    });
    return {
      name: 'MiniPush embedded',
      protocol: 'minipush',
      wsUrl: wsUrl(server),
      sessionPid: server.pid,
      sessionLabel: 'minipush(all roles)',
      pids: { 'minipush(all roles)': server.pid, ...servicePids() },
      via: { kind: 'rest', url: server.url!, apiKey: API_KEY },
      drained: () => Promise.resolve(),
      async stop() {
        await server.stop();
        await deployment.destroy();
      },
    };
  } catch (err) {
    await deployment.destroy();
    throw err;
  }
}

/** Waits until a counter of a process stops growing (two equal reads a second apart), ≤ 60 s. */
async function settledCounter(url: string, name: string): Promise<void> {
  let last = -1;
  for (let i = 0; i < 60; i++) {
    const now = await scrapeMetric(url, name);
    if (now === last) return;
    last = now;
    await sleep(1000);
  }
}

/** MiniPush scaled out: a projector and a hub process on Kafka + MariaDB. */
async function scaledOut(ctx: BenchContext): Promise<System & { readonly heads: PublishVia }> {
  const services = await ctx.services();
  const deployment: Deployment = await kafkaDeployment(services, { partitions: 8 });
  const servers: ServerProcess[] = [];
  const stop = async () => {
    for (const server of servers) await server.stop();
    await deployment.destroy();
  };
  try {
    const projector = await spawnServer(deployment.env(['projector']), { label: 'projector' });
    servers.push(projector);
    const hub = await spawnServer(deployment.env(['hub']), { label: 'hub' });
    servers.push(hub);
    const { topicPrefix } = deployment.config;
    return {
      name: 'MiniPush Kafka + MariaDB',
      protocol: 'minipush',
      wsUrl: wsUrl(hub),
      sessionPid: hub.pid,
      sessionLabel: 'minipush(hub)',
      pids: {
        'minipush(hub)': hub.pid,
        'minipush(projector)': projector.pid,
        ...servicePids(),
      },
      via: { kind: 'kafka', brokers: services.kafkaBrokers, topicPrefix },
      heads: { kind: 'heads', brokers: services.kafkaBrokers, topic: `${topicPrefix}.heads` },
      drained: () => settledCounter(projector.url!, 'minipush_projector_deliveries_total'),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Centrifugo's figure next to MiniPush's, for one row of the comparison. */
interface Comparison {
  readonly figure: string;
  readonly unit: string;
  readonly centrifugo: Figure;
  readonly minipush: Figure;
  /** Which of the values the summary row gives as the ratio. */
  readonly headline: number;
}

function ratios(c: Comparison): number[] {
  return c.minipush.values.map((m, i) => m / c.centrifugo.values[i]!);
}

function values(figure: Figure, unit: string): string {
  return `${figure.values.map(fmt).join(' / ')}${unit === '' ? '' : ` ${unit}`}`;
}

function cpuText(cpu: CpuReport): string {
  const parts = Object.entries(cpu.processes).map(([label, percent]) => `${label} ${percent}`);
  return `${parts.join(', ')} (box ${cpu.systemBusyPercent} % busy)`;
}

/** Whether a load generator ran at the limit of its core while the figure was measured. */
function saturation(figure: Figure): { saturated: boolean; text: string } {
  const loads = figure.load.map((label) => figure.cpu.processes[label] ?? 0);
  const peak = Math.max(0, ...loads);
  return {
    saturated: peak >= SATURATED,
    text: `${peak >= SATURATED ? '**yes**' : 'no'} (${loads.join(' + ')} %)${figure.behind ? `, published ${figure.behind} in time` : ''}`,
  };
}

function markdown(comparisons: readonly Comparison[]): string {
  const lines = [
    '| figure | Centrifugo | MiniPush | MiniPush ÷ Centrifugo | CPU, % of one core: Centrifugo run | CPU, % of one core: MiniPush run | load generator saturated: Centrifugo / MiniPush |',
    '| --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const c of comparisons) {
    lines.push(
      `| ${c.figure} | ${values(c.centrifugo, c.unit)} | ${values(c.minipush, c.unit)} | ${ratios(c)
        .map((r) => `${fmt(r)}×`)
        .join(
          ' / ',
        )} | ${cpuText(c.centrifugo.cpu)} | ${cpuText(c.minipush.cpu)} | ${saturation(c.centrifugo).text} / ${saturation(c.minipush).text} |`,
    );
  }
  return lines.join('\n');
}

function conditions(windows: Windows): string {
  return [
    `Centrifugo ${CENTRIFUGO_VERSION} (go install from the Go module proxy; memory engine; HS256 JWT; every user subscribed server-side to \`personal:#<uid>\`; app-level pings every 25 s, answered) against MiniPush at this checkout. One load program for both (bench/load/ws-clients.ts, an adapter per protocol), clients from separate processes and loopback addresses; CPU is % of one core per process over the measured window, \`other\` is the rest of the box.`,
    `Idle: one server process, sessions added by client processes of ${IDLE_STEPS.join(' + ')}, one per user; memory = settled RSS growth ÷ sessions; CPU over ${windows.idleSeconds} s at 19,000 (one ping period). MiniPush hub role = a hub process of a Kafka + MariaDB deployment; embedded = every role in one process.`,
    `Fan-out: ${FANOUT.users.toLocaleString('en-US')} users × ${FANOUT.perUser} sessions over ${FANOUT.processes} client processes, each publishing to its own users ${FANOUT.rates.join(' and ')} rounds/s for ${windows.fanoutSeconds} s; deliveries counted while publishing only. Nothing stored: Centrifugo without history (one /api/broadcast per round per process) vs MiniPush's hub alone, fed head changes on the heads topic. Stored: Centrifugo with history (${HISTORY.size} publications, ${HISTORY.ttl}, in memory) vs MiniPush publish → projector (MariaDB) → hub, one event to all users per round by the Kafka producer; MiniPush merges a user's nudges within 50 ms, so at 20 rounds/s it may send fewer than offered by design.`,
    `Latency: ${LATENCY.sessions.toLocaleString('en-US')} sessions, one per user, ${LATENCY.rate.toLocaleString('en-US')} events/s round-robin for ${windows.latencySeconds} s, each to one user, timed from the publish call to the frame in the same client process. Centrifugo by HTTP /api/publish; MiniPush embedded by REST POST /v1/events; MiniPush Kafka + MariaDB by the Kafka producer.`,
  ].join('\n\n');
}

export const peers: Benchmark = {
  name: 'peers',
  byNameOnly: true,
  description: `MiniPush next to Centrifugo ${CENTRIFUGO_VERSION} (needs go): idle sessions, fan-out, latency`,
  async run(ctx): Promise<Outcome> {
    const found = await centrifugoBinary((message) => ctx.log(message));
    if ('skipped' in found) {
      ctx.log(`peers: skipped — ${found.skipped}`);
      return {
        rows: [],
        markdown: `Skipped: ${found.skipped}.`,
        details: { skipped: found.skipped },
      };
    }
    const windows: Windows = ctx.quick
      ? { idleSeconds: 8, fanoutSeconds: 6, latencySeconds: 8 }
      : { idleSeconds: 25, fanoutSeconds: 15, latencySeconds: 20 };
    const wanted = (name: string) => ctx.only === null || name.includes(ctx.only);

    const plain = wanted('centrifugo')
      ? await holding(
          () => centrifugo(found.binary, false),
          async (s) => ({
            idle: await idle(ctx, s, windows),
            fanout: await fanout(ctx, s, [{ label: 'broadcast', via: s.via }], windows),
            latency: await latency(ctx, s, windows),
          }),
        )
      : null;
    const history = wanted('centrifugo-history')
      ? await holding(
          () => centrifugo(found.binary, true),
          async (s) => ({
            fanout: await fanout(ctx, s, [{ label: 'broadcast', via: s.via }], windows),
            latency: await latency(ctx, s, windows),
          }),
        )
      : null;
    const single = wanted('embedded')
      ? await holding(embedded, async (s) => ({
          idle: await idle(ctx, s, windows),
          latency: await latency(ctx, s, windows),
        }))
      : null;
    const scaled = wanted('kafka')
      ? await holding(
          () => scaledOut(ctx),
          async (s) => ({
            idle: await idle(ctx, s, windows),
            // End to end first: the hub alone then sends heads above the projector's.
            fanout: await fanout(
              ctx,
              s,
              [
                { label: 'end to end', via: s.via },
                { label: 'hub alone', via: s.heads },
              ],
              windows,
            ),
            latency: await latency(ctx, s, windows),
          }),
        )
      : null;

    const comparisons: Comparison[] = [];
    const compare = (
      figure: string,
      unit: string,
      c: Figure | undefined,
      m: Figure | undefined,
      headline = 0,
    ) => {
      if (c && m) comparisons.push({ figure, unit, centrifugo: c, minipush: m, headline });
    };
    for (const [label, mini] of [
      ['hub role', scaled],
      ['embedded', single],
    ] as const) {
      compare(
        `idle sessions held by one process, MiniPush ${label}`,
        '',
        plain?.idle.held,
        mini?.idle.held,
      );
      compare(
        `memory per idle session at 5k / 10k / 19k, MiniPush ${label}`,
        'KiB',
        plain?.idle.kibPerSession,
        mini?.idle.kibPerSession,
        2,
      );
      compare(
        `idle CPU of the server at 19,000 sessions, MiniPush ${label}`,
        '% of a core',
        plain?.idle.cpuPercent,
        mini?.idle.cpuPercent,
      );
    }
    FANOUT.rates.forEach((rate, i) => {
      compare(
        `fan-out deliveries/s at ${rate} rounds/s, nothing stored: Centrifugo vs MiniPush hub alone (heads topic)`,
        '/s',
        plain?.fanout.broadcast?.[i],
        scaled?.fanout['hub alone']?.[i],
      );
    });
    FANOUT.rates.forEach((rate, i) => {
      compare(
        `fan-out deliveries/s at ${rate} rounds/s, stored: Centrifugo with history vs MiniPush publish → projector → hub (Kafka + MariaDB)`,
        '/s',
        history?.fanout.broadcast?.[i],
        scaled?.fanout['end to end']?.[i],
      );
    });
    for (const [cLabel, c] of [
      ['Centrifugo', plain],
      ['Centrifugo with history', history],
    ] as const) {
      for (const [mLabel, m] of [
        ['MiniPush embedded (REST)', single],
        ['MiniPush Kafka + MariaDB (producer)', scaled],
      ] as const) {
        compare(
          `publish → delivery p50 / p99 / p99.9, ${cLabel} vs ${mLabel}`,
          'ms',
          c?.latency,
          m?.latency,
        );
      }
    }

    const rows: Row[] = comparisons.map((c) => ({
      metric: `${c.figure}: MiniPush ÷ Centrifugo`,
      value: ratios(c)[c.headline]!,
      unit: '×',
      ...info(),
      conditions: `Centrifugo ${values(c.centrifugo, c.unit)}, MiniPush ${values(c.minipush, c.unit)}${
        saturation(c.centrifugo).saturated || saturation(c.minipush).saturated
          ? '; a load generator saturated'
          : ''
      }`,
    }));
    return {
      rows,
      markdown: `${markdown(comparisons)}\n\n${conditions(windows)}`,
      details: {
        centrifugoVersion: CENTRIFUGO_VERSION,
        windows,
        comparisons: comparisons.map((c) => ({
          ...c,
          ratios: ratios(c),
          saturated: {
            centrifugo: saturation(c.centrifugo).saturated,
            minipush: saturation(c.minipush).saturated,
          },
        })),
        raw: { centrifugo: plain, centrifugoWithHistory: history, embedded: single, kafka: scaled },
      },
    };
  },
};
