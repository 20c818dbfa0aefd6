import type { Server as GrpcServer } from '@grpc/grpc-js';
import { Authenticator, type AuthSettings } from './auth/authenticator.js';
import {
  loadDevCredentials,
  withDevCredentials,
  type DevCredentials,
} from './auth/dev-credentials.js';
import { isEmbedded, type Config } from './config.js';
import { demoPlugins } from './demo/demo-plugin.js';
import { openBackend, type Backend } from './backend.js';
import type { Logger } from './logger.js';
import { openFileLimit, sessionCapacity } from './hubs/fd-limit.js';
import { Hub, type HubObserver } from './hubs/hub.js';
import { KafkaSessionBus, LocalSessionBus, type SessionBus } from './hubs/session-bus.js';
import { MiniPushService } from './service.js';
import { packageVersion } from './version.js';
import { buildHttpApp, type HttpApp } from './transports/http/app.js';
import type { Readiness } from './transports/http/routes/health.js';
import { metricsRoutes } from './transports/http/routes/metrics.js';
import { buildOperationsApp } from './transports/http/operations-app.js';
import { closeGrpc, createGrpcServer, listenGrpc } from './transports/grpc/server.js';
import { Projector } from './projections/projector.js';
import { TtlCleaner } from './projections/ttl-cleaner.js';
import { ProjectionProgress } from './queries/projection-progress.js';
import { migrateLatest } from './store/database.js';
import { ensureTopics } from './log/topics.js';
import { bothObservers, Metrics } from './telemetry/metrics.js';
import { projectorLag } from './telemetry/projector-lag.js';
import { flushTraces } from './telemetry/setup.js';
import { TracedChangeFeed, TracedCommandLog } from './telemetry/spans.js';

/** A running MiniPush process: the roles it was asked for, over one backend. */
export interface Runtime {
  readonly backend: Backend;
  readonly progress: ProjectionProgress;
  readonly projector: Projector | null;
  readonly cleaner: TtlCleaner | null;
  readonly hub: Hub | null;
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  /** This process's Prometheus metrics, served at `/metrics`. */
  readonly metrics: Metrics;
  /** REST/WebSocket for the api or hub role; health and metrics only for the others. */
  readonly http: HttpApp | null;
  /** `http://host:port` the app listens on. */
  readonly httpUrl: string | null;
  readonly grpcPort: number | null;
  /** Credentials made for the embedded default when none are configured. */
  readonly devCredentials: DevCredentials | null;
  /** Stops taking work, drains, commits and closes everything, in that order. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Applies migrations and creates topics first (the embedded default always does). */
  readonly prepare?: boolean;
  readonly hubObserver?: HubObserver;
}

export function commandLimits(config: Config) {
  return {
    bodyLimitBytes: config.bodyLimitBytes,
    maxRecipients: config.maxRecipients,
    maxEventIdLength: config.maxEventIdLength,
    maxSeqsPerCommand: config.maxSeqsPerCommand,
  };
}

export function serviceSettings(config: Config) {
  return {
    ...commandLimits(config),
    defaultLimit: config.defaultLimit,
    maxLimit: config.maxLimit,
    waitTimeoutMs: config.waitTimeoutMs,
  };
}

/** Largest HTTP body: a full-size event with the most recipients, with room for JSON syntax. */
function httpBodyLimit(config: Config): number {
  return config.bodyLimitBytes + config.maxRecipients * 12 + 64 * 1024;
}

export async function prepareBackend(
  config: Config,
  backend: Backend,
  logger: Logger,
): Promise<void> {
  const applied = await migrateLatest(backend.db);
  if (applied.length > 0) logger.info({ migrations: applied }, 'migrations applied');
  if (backend.kafka) {
    const admin = backend.kafka.admin();
    await admin.connect();
    try {
      const created = await ensureTopics(admin, config);
      if (created.length > 0) logger.info({ topics: created }, 'topics created');
    } finally {
      await admin.disconnect();
    }
  }
}

export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  const { config, logger } = options;
  const backend = openBackend(config, logger);
  // Closed in reverse order of opening: stop taking work first, release the backend last.
  const closers: Array<{ name: string; close: () => Promise<void> }> = [];
  const metrics = new Metrics();
  try {
    if (options.prepare ?? backend.kind.log === 'embedded') {
      await prepareBackend(config, backend, logger);
    }
    const progress = new ProjectionProgress(backend.db, backend.log.topic);
    closers.push({ name: 'projection progress', close: () => Promise.resolve(progress.stop()) });

    let projector: Projector | null = null;
    if (config.roles.includes('projector')) {
      projector = new Projector({
        db: backend.db,
        log: new TracedCommandLog(
          backend.log,
          backend.kind.log === 'kafka' ? 'kafka' : 'minipush.embedded',
        ),
        feed: new TracedChangeFeed(backend.feed, backend.topics.heads),
        limits: commandLimits(config),
        logger,
        ...(options.now ? { now: options.now } : {}),
        hooks: {
          onApplied: (partition, next) => progress.noteApplied(partition, next),
          onBatch: (info) => {
            metrics.onProjectorBatch(info);
            // Inside the batch's span: the line carries its trace_id.
            logger.debug({ component: 'projector', ...info }, 'batch applied');
          },
        },
      });
      metrics.watchLag(() => projectorLag(backend.db, backend.log));
      await projector.start();
      closers.push({ name: 'projector', close: () => projector!.stop() });
    }

    let cleaner: TtlCleaner | null = null;
    if (config.roles.includes('cleaner')) {
      cleaner = new TtlCleaner({
        db: backend.db,
        ttlMs: config.eventTtlMs,
        batchSize: config.cleanerBatchSize,
        intervalMs: config.cleanerIntervalMs,
        logger,
        ...(options.now ? { now: options.now } : {}),
        onPass: metrics.onCleanerPass,
      });
      cleaner.start();
      closers.push({ name: 'cleaner', close: () => cleaner!.stop() });
    }

    let authSettings: AuthSettings = config;
    let devCredentials: DevCredentials | null = null;
    if (isEmbedded(config)) {
      devCredentials = loadDevCredentials(config.dataDir);
      authSettings = withDevCredentials(config, devCredentials);
    }
    const authenticator = new Authenticator(authSettings);
    await authenticator.whenReady();
    const service = new MiniPushService({
      db: backend.db,
      log: backend.log,
      progress,
      settings: serviceSettings(config),
      ...(options.now ? { now: options.now } : {}),
      onCommand: metrics.onCommand,
    });

    const readiness = async (): Promise<Readiness> => {
      const checks: Record<string, string> = {};
      const check = async (name: string, probe: () => Promise<unknown>) => {
        try {
          await probe();
          checks[name] = 'ok';
        } catch (err) {
          checks[name] = err instanceof Error ? err.message : String(err);
        }
      };
      await check('store', () => backend.db.raw('SELECT 1'));
      await check('log', () => backend.log.endOffsets());
      if (projector)
        checks.projector = !projector.isRunning()
          ? 'stopped'
          : projector.isConsuming()
            ? 'ok'
            : 'not a member of the projector consumer group';
      if (hub)
        checks.hub = !hub.isAccepting()
          ? 'closing'
          : hub.isSubscribed()
            ? 'ok'
            : 'not subscribed to head changes and session records';
      return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
    };

    let hub: Hub | null = null;
    if (config.roles.includes('hub')) {
      const bus: SessionBus =
        backend.kafka !== null
          ? new KafkaSessionBus(
              backend.kafka,
              backend.topics.sessions,
              `${config.topicPrefix}.hub`,
              logger,
            )
          : new LocalSessionBus();
      const capacity = sessionCapacity(config.maxSessionsPerHub);
      if (capacity < config.maxSessionsPerHub) {
        logger.warn(
          { configured: config.maxSessionsPerHub, capacity, openFileLimit: openFileLimit() },
          'the open-file limit caps the sessions this hub can hold; raise it (ulimit -n) for more',
        );
      }
      const created: Hub = new Hub({
        settings: { ...config, maxSessionsPerHub: capacity },
        service,
        authenticator,
        feed: backend.feed,
        bus,
        logger,
        ...(options.now ? { now: options.now } : {}),
        observer: bothObservers(
          metrics.hubObserver(() => created.counts()),
          options.hubObserver,
        ),
      });
      closers.push({ name: 'session bus', close: () => bus.close() });
      await created.start();
      closers.push({ name: 'hub', close: () => created.close() });
      hub = created;
    }

    let http: HttpApp | null = null;
    let httpUrl: string | null = null;
    if (config.roles.includes('api') || config.roles.includes('hub')) {
      const jwtSecretForDev = devCredentials && config.devTokens ? authSettings.jwtSecret : null;
      http = await buildHttpApp({
        service,
        authenticator,
        logger,
        readiness,
        version: packageVersion(),
        bodyLimit: httpBodyLimit(config),
        devTokenSecret: jwtSecretForDev,
        plugins: [
          metricsRoutes(metrics),
          ...(hub
            ? [(app: HttpApp) => hub.register(app), ...demoPlugins(config, devCredentials)]
            : []),
        ],
      });
    } else {
      // Projector and cleaner processes too answer health checks and Prometheus.
      http = await buildOperationsApp({ logger, readiness, plugins: [metricsRoutes(metrics)] });
    }
    const app = http;
    httpUrl = await app.listen({ host: config.host, port: config.httpPort });
    closers.push({
      name: 'http',
      close: async () => {
        // In-flight requests get a grace period; keep-alive connections that stay busy (or turn
        // idle after close began) would otherwise hold the shutdown until their timeout.
        const drainMs = Math.min(2000, config.shutdownTimeoutMs / 4);
        const force = setTimeout(() => app.server.closeAllConnections(), drainMs);
        try {
          await app.close();
        } finally {
          clearTimeout(force);
        }
      },
    });

    let grpcServer: GrpcServer | null = null;
    let grpcPort: number | null = null;
    if (config.roles.includes('api') && config.grpcPort >= 0) {
      const server = createGrpcServer({
        service,
        authenticator,
        logger,
        interceptors: [metrics.grpcInterceptor()],
      });
      grpcPort = await listenGrpc(server, config.host, config.grpcPort);
      grpcServer = server;
      closers.push({
        name: 'grpc',
        close: () => closeGrpc(server, Math.min(5000, config.shutdownTimeoutMs / 2)),
      });
    }
    void grpcServer;

    return {
      backend,
      progress,
      projector,
      cleaner,
      hub,
      service,
      authenticator,
      metrics,
      http,
      httpUrl,
      grpcPort,
      devCredentials,
      async close() {
        for (const { name, close } of closers.reverse()) {
          const started = Date.now();
          await close().catch((err: unknown) =>
            logger.warn({ err, part: name }, 'error while closing'),
          );
          logger.info({ part: name, ms: Date.now() - started }, 'closed');
        }
        await backend.close();
        await flushTraces();
      },
    };
  } catch (err) {
    for (const { close } of closers.reverse()) await close().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw err;
  }
}
