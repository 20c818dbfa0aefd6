import * as grpc from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds; from a cache hit on a query to a slow `?wait=true` publish. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds from the log append of a command to the nudge of a session. */
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
const BATCH_SECONDS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Where a request came in: REST, gRPC or a WebSocket session. */
export type Transport = 'http' | 'grpc' | 'ws';

/**
 * What metrics hear from a hub and its session transports (WebSocket, SSE). The composition root passes it as
 * their observers; it is declared here, by shape, so telemetry imports nothing from the layers.
 */
export interface SessionEvents {
  onSessionOpened(): void;
  onSessionClosed(code: number): void;
  onKickoff(): void;
  onNudgesSent(count: number, latencyMs: number | null): void;
  onNudgeCoalesced(): void;
  onUpgradeRefused(reason: string): void;
  onRequest(type: string, durationMs: number, outcome: string): void;
  onSseRefused(reason: string): void;
  /** How an SSE stream's hello compared with its `Last-Event-ID` (`fresh`, `unchanged`, …). */
  onSseResume(result: string): void;
}

/** What metrics read of one projector batch (the projector's onBatch hook). */
export interface BatchFigures {
  readonly partition: number;
  readonly records: number;
  readonly deliveries: number;
  readonly deadLetters: number;
  readonly durationMs: number;
  /** Milliseconds per phase of the batch (see projections/projector.ts, BatchPhases). */
  readonly phases?: Readonly<Record<string, number>>;
  /** Milliseconds from the log time of the batch's oldest record to the batch's start. */
  readonly waitMs?: number;
}

/** One partition's projector lag in records: log end offset − next offset to apply. */
export interface PartitionLag {
  readonly partition: number;
  readonly lag: number;
}

/**
 * The process's Prometheus metrics, on a registry of its own (several runtimes may share a
 * process in tests). Every `minipush_*` series is documented in docs/observability.md; the
 * process and Node.js defaults (`process_*`, `nodejs_*`) come along.
 */
/** What the read cache counts (queries/read-cache.ts). */
export interface ReadCacheCounts {
  readonly hits: number;
  readonly misses: number;
  readonly fallbacks: number;
  readonly pageHits: number;
  readonly pageMisses: number;
  readonly evictions: number;
  readonly fences: number;
  readonly entries: number;
  readonly bytes: number;
}

const ZERO_READ_CACHE: ReadCacheCounts = {
  hits: 0,
  misses: 0,
  fallbacks: 0,
  pageHits: 0,
  pageMisses: 0,
  evictions: 0,
  fences: 0,
  entries: 0,
  bytes: 0,
};

/** A counter's or gauge's value read from elsewhere: counters are reset, then raised to it. */
function set(
  metric: Counter<string> | Gauge<string>,
  labels: Record<string, string>,
  value: number,
) {
  if (metric instanceof Gauge) metric.set(labels, value);
  else metric.inc(labels, value);
}

export class Metrics {
  readonly registry = new Registry();
  private readonly commands: Counter<'type'>;
  private readonly requests: Histogram<'transport' | 'route' | 'outcome'>;
  private readonly batchRecords: Histogram<'partition'>;
  private readonly batchSeconds: Histogram<'partition'>;
  private readonly batchPhaseSeconds: Histogram<'phase'>;
  private readonly recordWaitSeconds: Histogram;
  private readonly deliveries: Counter<'partition'>;
  private readonly deadLetters: Counter<'partition'>;
  private readonly nudgeLatency: Histogram;
  private readonly nudgesSent: Counter;
  private readonly nudgesCoalesced: Counter;
  private readonly sessionsOpened: Counter;
  private readonly sessionsClosed: Counter<'code'>;
  private readonly sseRefused: Counter<'reason'>;
  private readonly sseResumes: Counter<'result'>;
  private readonly kickoffs: Counter;
  private readonly upgradesRefused: Counter<'reason'>;
  private readonly cleanerPasses: Counter;
  private readonly cleanerDeleted: Counter<'table'>;
  private hubCounts: (() => { sessions: number; users: number }) | null = null;
  private lagSource: (() => Promise<readonly PartitionLag[]>) | null = null;
  private readCacheSource: (() => ReadCacheCounts) | null = null;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // Gauges read at scrape time call back into this object.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const metrics = this;
    this.commands = new Counter({
      name: 'minipush_commands_total',
      help: 'Commands accepted into the write log by this process, by type',
      labelNames: ['type'],
      registers,
    });
    this.requests = new Histogram({
      name: 'minipush_request_duration_seconds',
      help: 'Time to answer a request: REST route, gRPC method or WebSocket request type',
      labelNames: ['transport', 'route', 'outcome'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.batchRecords = new Histogram({
      name: 'minipush_projector_batch_records',
      help: 'Records applied per projector batch (one database transaction)',
      labelNames: ['partition'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.batchSeconds = new Histogram({
      name: 'minipush_projector_batch_duration_seconds',
      help: 'Time to apply, commit and notify one projector batch',
      labelNames: ['partition'],
      buckets: BATCH_SECONDS,
      registers,
    });
    this.batchPhaseSeconds = new Histogram({
      name: 'minipush_projector_batch_phase_seconds',
      help: 'Where a projector batch spends its time: load (read users and deliveries), apply (in memory), write (the transaction up to its commit), notify (heads), route (dead letters, forwards)',
      labelNames: ['phase'],
      buckets: BATCH_SECONDS,
      registers,
    });
    this.recordWaitSeconds = new Histogram({
      name: 'minipush_projector_record_wait_seconds',
      help: "From the log time of a batch's oldest record to the start of its batch: the hop through the log and the wait for the partition's batch before it",
      buckets: BATCH_SECONDS,
      registers,
    });
    this.deliveries = new Counter({
      name: 'minipush_projector_deliveries_total',
      help: 'Events delivered into user feeds (one per recipient)',
      labelNames: ['partition'],
      registers,
    });
    this.deadLetters = new Counter({
      name: 'minipush_dead_letters_total',
      help: 'Records the projector sent to the dead-letter topic',
      labelNames: ['partition'],
      registers,
    });
    new Gauge({
      name: 'minipush_projector_lag',
      help: 'Records in the commands log not yet applied: log end offset - next offset',
      labelNames: ['partition'],
      registers,
      collect: async function (this: Gauge<'partition'>) {
        this.reset();
        if (!metrics.lagSource) return;
        const lags = await metrics.lagSource().catch(() => []);
        for (const { partition, lag } of lags) this.set({ partition: String(partition) }, lag);
      },
    });
    // The read cache counts for itself; these read its counts at scrape time.
    const readCacheSeries = (
      name: string,
      help: string,
      values: (counts: ReadCacheCounts) => Record<string, number> | number,
      kind: 'counter' | 'gauge' = 'counter',
    ) => {
      const labelNames = typeof values(ZERO_READ_CACHE) === 'number' ? [] : ['result'];
      const collect = function (this: Counter<string> | Gauge<string>) {
        const counts = metrics.readCacheSource?.();
        if (!counts) return;
        this.reset();
        const figures = values(counts);
        if (typeof figures === 'number') set(this, {}, figures);
        else for (const [result, value] of Object.entries(figures)) set(this, { result }, value);
      };
      if (kind === 'counter') new Counter({ name, help, labelNames, registers, collect });
      else new Gauge({ name, help, labelNames, registers, collect });
    };
    readCacheSeries(
      'minipush_read_cache_requests_total',
      'Queries by how the read cache answered: hit (memory), miss (state read from the store), fallback (heads stream behind or unavailable: the store)',
      (c) => ({ hit: c.hits, miss: c.misses, fallback: c.fallbacks }),
    );
    readCacheSeries(
      'minipush_read_cache_pages_total',
      'Pages of events by where the read cache found them: hit (memory) or miss (the store)',
      (c) => ({ hit: c.pageHits, miss: c.pageMisses }),
    );
    readCacheSeries(
      'minipush_read_cache_fences_total',
      'Queries the read cache ran to learn how far the store has committed (one serves every query waiting)',
      (c) => c.fences,
    );
    readCacheSeries(
      'minipush_read_cache_evictions_total',
      'Users the read cache dropped to stay within its memory budget',
      (c) => c.evictions,
    );
    readCacheSeries(
      'minipush_read_cache_entries',
      'Users held by the read cache',
      (c) => c.entries,
      'gauge',
    );
    readCacheSeries(
      'minipush_read_cache_bytes',
      'Estimated memory held by the read cache (MINIPUSH_READ_CACHE bounds it)',
      (c) => c.bytes,
      'gauge',
    );
    new Gauge({
      name: 'minipush_sessions',
      help: 'Live sessions on this hub, WebSocket and SSE',
      registers,
      collect: function (this: Gauge) {
        if (metrics.hubCounts) this.set(metrics.hubCounts().sessions);
      },
    });
    new Gauge({
      name: 'minipush_session_users',
      help: 'Distinct users with a live session on this hub',
      registers,
      collect: function (this: Gauge) {
        if (metrics.hubCounts) this.set(metrics.hubCounts().users);
      },
    });
    this.sessionsOpened = new Counter({
      name: 'minipush_sessions_opened_total',
      help: 'Sessions (WebSocket and SSE) authenticated and opened',
      registers,
    });
    this.sessionsClosed = new Counter({
      name: 'minipush_sessions_closed_total',
      help: 'Sessions closed, by WebSocket close code (SSE streams end with the same codes)',
      labelNames: ['code'],
      registers,
    });
    this.kickoffs = new Counter({
      name: 'minipush_kickoffs_total',
      help: 'Sessions kicked off because their user went over the session quota',
      registers,
    });
    this.upgradesRefused = new Counter({
      name: 'minipush_ws_upgrades_refused_total',
      help: 'WebSocket upgrades refused before a session opened, by error code',
      labelNames: ['reason'],
      registers,
    });
    this.sseRefused = new Counter({
      name: 'minipush_sse_refused_total',
      help: 'SSE streams refused before a session opened, by error code',
      labelNames: ['reason'],
      registers,
    });
    this.sseResumes = new Counter({
      name: 'minipush_sse_resumes_total',
      help: "SSE streams opened, by how the hello compared with the client's Last-Event-ID",
      labelNames: ['result'],
      registers,
    });
    this.nudgesSent = new Counter({
      name: 'minipush_nudges_sent_total',
      help: 'Head nudges sent to sessions',
      registers,
    });
    this.nudgesCoalesced = new Counter({
      name: 'minipush_nudges_coalesced_total',
      help: 'Head changes merged into a pending nudge instead of sent on their own',
      registers,
    });
    this.nudgeLatency = new Histogram({
      name: 'minipush_publish_to_nudge_seconds',
      help: 'From the log time of the newest command behind a nudge to the nudge, once per user told',
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.cleanerPasses = new Counter({
      name: 'minipush_cleaner_passes_total',
      help: 'TTL cleaner passes completed',
      registers,
    });
    this.cleanerDeleted = new Counter({
      name: 'minipush_cleaner_deleted_total',
      help: 'Rows the TTL cleaner deleted, by table',
      labelNames: ['table'],
      registers,
    });
  }

  /** For MiniPushService's onCommand. */
  readonly onCommand = (command: { readonly type: string }): void => {
    this.commands.inc({ type: command.type });
  };

  /** For the TTL cleaner's onPass. */
  readonly onCleanerPass = (deleted: {
    deliveries: number;
    events: number;
    results: number;
    conflicts: number;
  }): void => {
    this.cleanerPasses.inc();
    this.cleanerDeleted.inc({ table: 'user_events' }, deleted.deliveries);
    this.cleanerDeleted.inc({ table: 'events' }, deleted.events);
    this.cleanerDeleted.inc({ table: 'command_results' }, deleted.results);
    this.cleanerDeleted.inc({ table: 'publish_conflicts' }, deleted.conflicts);
  };

  /** For the projector's onBatch hook. */
  readonly onProjectorBatch = (info: BatchFigures): void => {
    const partition = String(info.partition);
    this.batchRecords.observe({ partition }, info.records);
    this.batchSeconds.observe({ partition }, info.durationMs / 1000);
    for (const [phase, ms] of Object.entries(info.phases ?? {})) {
      this.batchPhaseSeconds.observe({ phase }, ms / 1000);
    }
    if (info.waitMs !== undefined) this.recordWaitSeconds.observe(info.waitMs / 1000);
    this.deliveries.inc({ partition }, info.deliveries);
    if (info.deadLetters > 0) this.deadLetters.inc({ partition }, info.deadLetters);
  };

  observeRequest(transport: Transport, route: string, outcome: string, seconds: number): void {
    this.requests.observe({ transport, route, outcome }, seconds);
  }

  /** What a hub reports; `minipush_sessions*` read the hub's counts at scrape time. */
  hubObserver(counts: () => { sessions: number; users: number }): SessionEvents {
    this.hubCounts = counts;
    return {
      onSessionOpened: () => this.sessionsOpened.inc(),
      onSessionClosed: (code) => this.sessionsClosed.inc({ code: String(code) }),
      onKickoff: () => this.kickoffs.inc(),
      onNudgesSent: (count, latencyMs) => {
        this.nudgesSent.inc(count);
        // Once per user told, not per session: its sessions here are told at the same moment.
        if (latencyMs !== null) this.nudgeLatency.observe(Math.max(0, latencyMs) / 1000);
      },
      onNudgeCoalesced: () => this.nudgesCoalesced.inc(),
      onUpgradeRefused: (reason) => this.upgradesRefused.inc({ reason }),
      onRequest: (type, durationMs, outcome) =>
        this.observeRequest('ws', type, outcome, durationMs / 1000),
      onSseRefused: (reason) => this.sseRefused.inc({ reason }),
      onSseResume: (result) => this.sseResumes.inc({ result }),
    };
  }

  /** Reads the read cache's counters at scrape time (api and hub roles). */
  watchReadCache(source: () => ReadCacheCounts): void {
    this.readCacheSource = source;
  }

  /** Reads projector lag at scrape time (processes with the projector role). */
  watchLag(source: () => Promise<readonly PartitionLag[]>): void {
    this.lagSource = source;
  }

  /** Times every gRPC call by method path and status. */
  grpcInterceptor(): grpc.ServerInterceptor {
    return (method, call) => {
      const started = performance.now();
      return new grpc.ServerInterceptingCall(call, {
        sendStatus: (status, next) => {
          const outcome = grpc.status[status.code] ?? String(status.code);
          this.observeRequest('grpc', method.path, outcome, (performance.now() - started) / 1000);
          next(status);
        },
      });
    };
  }
}
