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
/** % of one core used by processes outside the benchmark above which a row says the box was shared. */
const SHARED = 25;

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
  /** Labels in a window's CPU split that do the server side's work (Kafka and MariaDB too). */
  readonly serverLabels: readonly string[];
  /** The server side's own processes, labelled for the CPU split. */
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

/** One run of the benchmark: its windows, and every system started for it. */
interface Run {
  readonly ctx: BenchContext;
  readonly windows: Windows;
  /** All systems up during the run; those not under test idle meanwhile. */
  readonly systems: readonly System[];
}

const IDLE_PEERS = 'idle peers';

/**
 * The processes a window measures: the system under test, its clients, Kafka and MariaDB, and
 * the other systems of the run (idle; `folded` sums them into one entry).
 */
function windowPids(run: Run, system: System, clients: Clients): Record<string, number> {
  const idle = run.systems
    .filter((other) => other !== system)
    .flatMap((other) =>
      Object.entries(other.pids).map(([label, pid]) => [`${IDLE_PEERS}:${label}`, pid]),
    );
  return { ...system.pids, ...clients.pids(), ...servicePids(), ...Object.fromEntries(idle) };
}

function folded(cpu: CpuReport): CpuReport {
  const processes: Record<string, number> = {};
  for (const [label, percent] of Object.entries(cpu.processes)) {
    const key = label.startsWith(`${IDLE_PEERS}:`) ? IDLE_PEERS : label;
    processes[key] = (processes[key] ?? 0) + percent;
  }
  return { ...cpu, processes };
}

/** A figure of one system, with the CPU of every process while it was measured. */
interface Figure {
  readonly values: readonly number[];
  readonly cpu: CpuReport;
  /** The load generators' labels in `cpu`. */
  readonly load: readonly string[];
  /** Set when the publishing fell behind its schedule (e.g. `96 of 120 rounds`). */
  readonly behind?: string;
  /**
   * µs of server-side CPU (every server process, Kafka and MariaDB included) per delivery or
   * per event: what the figure cost, which a box shared with other work changes least.
   */
  readonly cpuPerUnit?: number;
  readonly details?: Record<string, unknown>;
}

/** µs of the server side's CPU (these labels) per unit of work, at `perSecond` units a second. */
function perUnit(labels: readonly string[], cpu: CpuReport, perSecond: number): number {
  const percent = labels.reduce((sum, label) => sum + (cpu.processes[label] ?? 0), 0);
  return (percent / 100) * (1e6 / perSecond);
}

/** The cost side of a figure: its µs of server CPU per unit, in the same window. */
function cost(figure: Figure | undefined): Figure | undefined {
  return figure?.cpuPerUnit === undefined ? undefined : { ...figure, values: [figure.cpuPerUnit] };
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
  run: Run,
  system: System,
  use: (clients: Clients) => Promise<T>,
): Promise<T> {
  return holding(() => new Clients(run.ctx, system), use);
}

interface Idle {
  /** Sessions still up at the end (of the 19,000 opened). */
  readonly held: number;
  readonly kibPerSession: Figure;
  readonly cpuPercent: Figure;
}

/** Idle sessions on one process: memory per session at each step, then CPU over a ping period. */
function idle(run: Run, system: System): Promise<Idle> {
  return withClients(run, system, async (clients) => {
    const baseline = rssBytes(system.sessionPid);
    const rss: number[] = [];
    const kib: number[] = [];
    let opened = 0;
    for (const count of IDLE_STEPS) {
      await clients.add(count, FIRST_UID.idle + opened, 1);
      opened += count;
      rss.push(await settledRss(system.sessionPid));
      kib.push((rss.at(-1)! - baseline) / opened / 1024);
      run.ctx.log(`${system.name}: ${opened} idle sessions, ${fmt(kib.at(-1)!)} KiB each`);
    }
    const window = cpuWindow(windowPids(run, system, clients));
    await sleep(run.windows.idleSeconds * 1000);
    const cpu = folded(window.stop());
    const sessions = await clients.sessions();
    const load = Object.keys(clients.pids());
    const details = { baseline, rss, steps: IDLE_STEPS, ...sessions };
    return {
      held: sessions.up,
      kibPerSession: { values: kib, cpu, load, details },
      cpuPercent: { values: [cpu.processes[system.sessionLabel] ?? NaN], cpu, load },
    };
  });
}

/** Fan-out: `rate` rounds a second, each one event to each of 2,000 users (5 sessions each). */
function fanout(
  run: Run,
  system: System,
  variants: ReadonlyArray<{
    readonly label: string;
    readonly via: PublishVia;
    /** The processes doing this variant's work, when fewer than the system's. */
    readonly serverLabels?: readonly string[];
  }>,
): Promise<Record<string, Figure[]>> {
  const { ctx, windows } = run;
  return withClients(run, system, async (clients) => {
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
          windowPids(run, system, clients),
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
        const cpu = folded(window.cpu);
        out[variant.label]!.push({
          values: [window.perSecond],
          cpu,
          cpuPerUnit: perUnit(variant.serverLabels ?? system.serverLabels, cpu, window.perSecond),
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
function latency(run: Run, system: System): Promise<Figure> {
  const { ctx, windows } = run;
  return withClients(run, system, async (clients) => {
    await clients.add(LATENCY.sessions, FIRST_UID.latency, 1);
    await sleep(2000);
    const window = cpuWindow(windowPids(run, system, clients));
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
    const cpu = folded(window.stop());
    const sessions = await clients.sessions();
    ctx.log(
      `${system.name}: publish → delivery p50 ${fmt(result.p50!)} ms, p99 ${fmt(result.p99!)} ms, ${result.received} of ${result.sent} timed`,
    );
    return {
      values: [result.p50!, result.p99!, result['p99.9']!],
      cpu,
      cpuPerUnit: perUnit(system.serverLabels, cpu, result.sent! / windows.latencySeconds),
      load: Object.keys(clients.pids()),
      details: { ...result, ...sessions },
    };
  });
}

async function centrifugo(binary: string, history: boolean): Promise<System> {
  const server = await startCentrifugo(binary, { history });
  const label = history ? 'centrifugo(history)' : 'centrifugo';
  return {
    name: history ? 'Centrifugo with history' : 'Centrifugo',
    protocol: 'centrifugo',
    wsUrl: server.wsUrl,
    sessionPid: server.pid,
    sessionLabel: label,
    serverLabels: [label],
    pids: { [label]: server.pid },
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
      serverLabels: ['minipush(all roles)'],
      pids: { 'minipush(all roles)': server.pid },
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
      serverLabels: ['minipush(hub)', 'minipush(projector)', 'kafka', 'mariadb'],
      pids: { 'minipush(hub)': hub.pid, 'minipush(projector)': projector.pid },
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

/** The CPU split in a few words: client processes side by side, idle bystanders left out. */
function cpuText(cpu: CpuReport, load: readonly string[]): string {
  const clients = load.map((label) => cpu.processes[label] ?? 0).join('+');
  const parts = Object.entries(cpu.processes)
    .filter(([label, percent]) => !load.includes(label) && (percent >= 1 || label === 'other'))
    .map(([label, percent]) => `${label} ${percent}`);
  parts.splice(1, 0, `clients ${clients}`);
  return `${parts.join(', ')} (box ${cpu.systemBusyPercent} % busy)`;
}

/** Whether a load generator ran at the limit of its core while the figure was measured. */
function saturation(figure: Figure): { saturated: boolean; text: string } {
  const loads = figure.load.map((label) => figure.cpu.processes[label] ?? 0);
  const peak = Math.max(0, ...loads);
  const other = figure.cpu.processes.other ?? 0;
  return {
    saturated: peak >= SATURATED,
    text: [
      peak >= SATURATED ? '**yes**' : 'no',
      ...(figure.behind ? [`published ${figure.behind} in time`] : []),
      ...(other >= SHARED ? [`box shared (other ${other} %)`] : []),
    ].join(', '),
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
        )} | ${cpuText(c.centrifugo.cpu, c.centrifugo.load)} | ${cpuText(c.minipush.cpu, c.minipush.load)} | ${saturation(c.centrifugo).text} / ${saturation(c.minipush).text} |`,
    );
  }
  return lines.join('\n');
}

function conditions(windows: Windows): string {
  return [
    `Centrifugo ${CENTRIFUGO_VERSION} (go install from the Go module proxy; memory engine; HS256 JWT; every user subscribed server-side to \`personal:#<uid>\`; app-level pings every 25 s, answered) against MiniPush at this checkout. One load program for both (bench/load/ws-clients.ts, an adapter per protocol), clients from separate processes and loopback addresses; CPU is % of one core per process over the measured window; every system is up for the whole run and the two sides of a row are measured one after the other, \`idle peers\` is the CPU of the systems not under test meanwhile, \`other\` everything else on the box. Server CPU per delivery (or per event) is the CPU of the server side — Centrifugo; MiniPush's processes, with Kafka and MariaDB for the Kafka deployment, the hub and Kafka for the hub alone — divided by what it delivered: the figure a box shared with other work changes least.`,
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
    const systems: System[] = [];
    const start = async <S extends System>(name: string, make: () => Promise<S>) => {
      if (!wanted(name)) return null;
      const system = await make();
      systems.push(system);
      return system;
    };
    const figures = async () => {
      // Every system is up for the whole run and each pair is measured back to back, so load
      // from elsewhere on the box skews both sides of a row alike.
      const plain = await start('centrifugo', () => centrifugo(found.binary, false));
      const history = await start('centrifugo-history', () => centrifugo(found.binary, true));
      const single = await start('embedded', embedded);
      const scaled = await start('kafka', () => scaledOut(ctx));
      const run: Run = { ctx, windows, systems };
      await sleep(3000);
      const when = <S extends System, T>(system: S | null, measure: (s: S) => Promise<T>) =>
        system ? measure(system) : Promise.resolve(undefined);
      const idles = {
        plain: await when(plain, (s) => idle(run, s)),
        scaled: await when(scaled, (s) => idle(run, s)),
        single: await when(single, (s) => idle(run, s)),
      };
      const broadcast = (s: System) => fanout(run, s, [{ label: 'broadcast', via: s.via }]);
      const fanouts = {
        history: await when(history, broadcast),
        // End to end before the hub alone: the hub then sends heads above the projector's.
        scaled: await when(scaled, (s) =>
          fanout(run, s, [
            { label: 'end to end', via: s.via },
            // The projector and MariaDB idle meanwhile: the hub reads the heads from Kafka.
            { label: 'hub alone', via: s.heads, serverLabels: ['minipush(hub)', 'kafka'] },
          ]),
        ),
        plain: await when(plain, broadcast),
      };
      const latencies = {
        plain: await when(plain, (s) => latency(run, s)),
        single: await when(single, (s) => latency(run, s)),
        history: await when(history, (s) => latency(run, s)),
        scaled: await when(scaled, (s) => latency(run, s)),
      };
      return { idles, fanouts, latencies };
    };
    let measured: Awaited<ReturnType<typeof figures>>;
    try {
      measured = await figures();
    } finally {
      for (const system of systems.reverse()) await system.stop();
    }
    const { idles, fanouts, latencies } = measured;

    const heldText = (c: Idle | undefined, m: Idle | undefined) =>
      `${fmt(c?.held ?? NaN)} / ${fmt(m?.held ?? NaN)}`;
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
      ['hub role', idles.scaled],
      ['embedded', idles.single],
    ] as const) {
      compare(
        `memory per idle session at 5k / 10k / 19k, MiniPush ${label} (sessions held at the end: ${heldText(idles.plain, mini)})`,
        'KiB',
        idles.plain?.kibPerSession,
        mini?.kibPerSession,
        2,
      );
      compare(
        `idle CPU of the server at 19,000 sessions, MiniPush ${label}`,
        '% of a core',
        idles.plain?.cpuPercent,
        mini?.cpuPercent,
      );
    }
    const pairs = [
      [
        'nothing stored: Centrifugo vs MiniPush hub alone (heads topic)',
        fanouts.plain?.broadcast,
        fanouts.scaled?.['hub alone'],
      ],
      [
        'stored: Centrifugo with history vs MiniPush publish → projector → hub (Kafka + MariaDB)',
        fanouts.history?.broadcast,
        fanouts.scaled?.['end to end'],
      ],
    ] as const;
    for (const [what, c, m] of pairs) {
      FANOUT.rates.forEach((rate, i) => {
        compare(`fan-out deliveries/s at ${rate} rounds/s, ${what}`, '/s', c?.[i], m?.[i]);
        compare(
          `server CPU per delivery at ${rate} rounds/s, ${what}`,
          'µs',
          cost(c?.[i]),
          cost(m?.[i]),
        );
      });
    }
    for (const [cLabel, c] of [
      ['Centrifugo', latencies.plain],
      ['Centrifugo with history', latencies.history],
    ] as const) {
      for (const [mLabel, m] of [
        ['MiniPush embedded (REST)', latencies.single],
        ['MiniPush Kafka + MariaDB (producer)', latencies.scaled],
      ] as const) {
        compare(`publish → delivery p50 / p99 / p99.9, ${cLabel} vs ${mLabel}`, 'ms', c, m);
        compare(`server CPU per event published, ${cLabel} vs ${mLabel}`, 'µs', cost(c), cost(m));
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
        raw: measured,
      },
    };
  },
};
