import type { Server as GrpcServer } from '@grpc/grpc-js';
import { Authenticator, type AuthSettings } from './auth/authenticator.js';
import {
  loadDevCredentials,
  withDevCredentials,
  type DevCredentials,
} from './auth/dev-credentials.js';
import { prepareBackend, type Backend } from './backend.js';
import { commandLimits, isEmbedded, webSocketOrigins, type Config } from './config.js';
import { demoPlugins } from './demo/demo-plugin.js';
import { openFileLimit, sessionCapacity } from './hubs/fd-limit.js';
import { Hub } from './hubs/hub.js';
import { KafkaSessionBus, LocalSessionBus, type SessionBus } from './hubs/session-bus.js';
import type { Logger } from './logger.js';
import { SharedChangeFeed } from './log/shared-feed.js';
import { ProjectionProgress } from './projections/projection-progress.js';
import { Projector } from './projections/projector.js';
import { TtlCleaner } from './projections/ttl-cleaner.js';
import { ReadCache } from './queries/read-cache.js';
import { MiniPushService, type ServiceSettings } from './service.js';
import { closeGrpc, createGrpcServer, listenGrpc } from './transports/grpc/server.js';
import { buildHttpApp, type HttpApp } from './transports/http/app.js';
import { buildOperationsApp } from './transports/http/operations-app.js';
import type { Readiness } from './transports/http/routes/health.js';
import { metricsRoutes } from './transports/http/routes/metrics.js';
import { sseRoutes } from './transports/sse/sse-plugin.js';
import { sessionAdmission, websocketRoutes } from './transports/ws/websocket-plugin.js';
import { Metrics } from './telemetry/metrics.js';
import { projectorLag } from './telemetry/projector-lag.js';
import {
  batchTracing,
  recordClientError,
  traceAppend,
  traceNotifications,
  traceNudge,
} from './telemetry/spans.js';
import { packageVersion } from './version.js';

/**
 * MiniPush's parts for the roles asked for, over one backend, wired together and running
 * (projector consuming, hub subscribed), but not yet listening.
 */
export interface App {
  readonly backend: Backend;
  readonly progress: ProjectionProgress;
  readonly projector: Projector | null;
  readonly cleaner: TtlCleaner | null;
  readonly hub: Hub | null;
  /** In front of the store for the queries of the api and hub roles, unless turned off. */
  readonly readCache: ReadCache | null;
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  /** This process's Prometheus metrics, served at `/metrics`. */
  readonly metrics: Metrics;
  /** REST/WebSocket for the api or hub role; health and metrics only for the others. */
  readonly http: HttpApp;
  /** The gRPC server for the api role (unless `grpcPort` is -1), not yet bound. */
  readonly grpc: GrpcServer | null;
  /** Credentials made for the embedded default when none are configured. */
  readonly devCredentials: DevCredentials | null;
  /** Binds HTTP (and gRPC) to the configured host and ports. */
  listen(): Promise<{ httpUrl: string; grpcPort: number | null }>;
  /** Stops taking work, drains, commits and closes every part, in that order (not the backend). */
  close(): Promise<void>;
}

export interface AppOptions {
  readonly config: Config;
  readonly backend: Backend;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Applies migrations and creates topics first (the embedded default always does). */
  readonly prepare?: boolean;
}

function serviceSettings(config: Config): ServiceSettings {
  return {
    ...commandLimits(config),
    defaultLimit: config.defaultLimit,
    maxLimit: config.maxLimit,
    waitTimeoutMs: config.waitTimeoutMs,
    e2eEnabled: config.e2eEnabled,
    e2eMaxBodyBytes: config.e2eMaxBodyBytes,
    e2eRatePerMinute: config.e2eRatePerMinute,
  };
}

/** Largest HTTP body: a full-size event with the most recipients, with room for JSON syntax. */
function httpBodyLimit(config: Config): number {
  return config.bodyLimitBytes + config.maxRecipients * 12 + 64 * 1024;
}

/**
 * The composition root: builds the parts the roles need, and wires the hooks that connect them
 * (projector progress to `?wait=true`, metrics and tracing to every layer). Nothing below it
 * knows about telemetry or about the other layers' wiring.
 */
export async function buildApp(options: AppOptions): Promise<App> {
  const { config, backend, logger } = options;
  const now = options.now ? { now: options.now } : {};
  // Closed in reverse order of opening: stop taking work first.
  const closers: Array<{ name: string; close: () => Promise<void> }> = [];
  const metrics = new Metrics();
  const closeAll = async (log: boolean) => {
    for (const { name, close } of closers.splice(0).reverse()) {
      const started = Date.now();
      await close().catch((err: unknown) => {
        if (log) logger.warn({ err, part: name }, 'error while closing');
      });
      if (log) logger.info({ part: name, ms: Date.now() - started }, 'closed');
    }
  };
  try {
    if (options.prepare ?? backend.kind.log === 'embedded') {
      await prepareBackend(config, backend, logger);
    }
    const progress = new ProjectionProgress(backend.db, backend.log.topic);
    closers.push({ name: 'projection progress', close: () => Promise.resolve(progress.stop()) });

    let projector: Projector | null = null;
    if (config.roles.includes('projector')) {
      const system = backend.kind.log === 'kafka' ? 'kafka' : 'minipush.embedded';
      const tracing = batchTracing(system, backend.log.topic);
      const started = new Projector({
        db: backend.db,
        log: backend.log,
        feed: backend.feed,
        limits: commandLimits(config),
        logger,
        userCacheBytes: config.projectorCacheBytes,
        ...now,
        hooks: {
          onApplied: (partition, next) => progress.noteApplied(partition, next),
          onBatch: (info) => {
            metrics.onProjectorBatch(info);
            // Inside the batch's span: the line carries its trace_id.
            logger.debug({ component: 'projector', ...info }, 'batch applied');
          },
          aroundBatch: tracing.aroundBatch,
          onDeadLetters: tracing.onDeadLetters,
          aroundNotify: traceNotifications(backend.topics.heads),
        },
      });
      metrics.watchLag(() => projectorLag(backend.db, backend.log));
      await started.start();
      closers.push({ name: 'projector', close: () => started.stop() });
      projector = started;
    }

    let cleaner: TtlCleaner | null = null;
    if (config.roles.includes('cleaner')) {
      const started = new TtlCleaner({
        db: backend.db,
        log: backend.log,
        progress,
        waitTimeoutMs: config.waitTimeoutMs,
        ttlMs: config.eventTtlMs,
        batchSize: config.cleanerBatchSize,
        intervalMs: config.cleanerIntervalMs,
        logger,
        ...now,
        onPass: metrics.onCleanerPass,
      });
      started.start();
      closers.push({ name: 'cleaner', close: () => started.stop() });
      cleaner = started;
    }

    let authSettings: AuthSettings = config;
    let devCredentials: DevCredentials | null = null;
    if (isEmbedded(config)) {
      devCredentials = loadDevCredentials(config.dataDir);
      authSettings = withDevCredentials(config, devCredentials);
    }
    const authenticator = new Authenticator(authSettings);
    await authenticator.whenReady();
    // The hub and the read cache hear the heads stream through one subscription.
    const heads = new SharedChangeFeed(backend.feed);
    closers.push({ name: 'heads subscription', close: () => heads.close() });
    let readCache: ReadCache | null = null;
    const answersQueries = config.roles.includes('api') || config.roles.includes('hub');
    if (answersQueries && config.readCacheBytes > 0) {
      const started = new ReadCache({
        db: backend.db,
        feed: heads,
        topic: backend.log.topic,
        maxBytes: config.readCacheBytes,
        waitMs: config.readCacheWaitMs,
        // The embedded store is this process's alone (the data folder is locked).
        ...(backend.kind.log === 'embedded' && projector
          ? { localCommits: () => progress.appliedOffsets() }
          : {}),
        logger,
      });
      await started.start();
      closers.push({ name: 'read cache', close: () => started.stop() });
      metrics.watchReadCache(() => started.stats());
      readCache = started;
    }
    const service = new MiniPushService({
      db: backend.db,
      ...(readCache ? { views: readCache } : {}),
      log: backend.log,
      progress,
      settings: serviceSettings(config),
      ...now,
      onCommand: metrics.onCommand,
      aroundAppend: traceAppend,
    });

    let hub: Hub | null = null;
    const sessionEvents = metrics.hubObserver(() => hub?.counts() ?? { sessions: 0, users: 0 });
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
      const started = new Hub({
        settings: { ...config, maxSessionsPerHub: capacity },
        service,
        feed: heads,
        bus,
        logger,
        ...now,
        observer: sessionEvents,
        aroundNudge: traceNudge,
      });
      closers.push({ name: 'session bus', close: () => bus.close() });
      await started.start();
      closers.push({ name: 'hub', close: () => started.close() });
      hub = started;
    }

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

    const serving = answersQueries;
    const withHub = hub;
    const http = serving
      ? await buildHttpApp({
          service,
          authenticator,
          logger,
          readiness,
          version: packageVersion(),
          bodyLimit: httpBodyLimit(config),
          devTokenSecret: devCredentials && config.devTokens ? authSettings.jwtSecret : null,
          corsOrigins: config.corsOrigins,
          trustProxy: config.trustProxy,
          onClientError: (error) => recordClientError(error.code),
          plugins: [
            metricsRoutes(metrics),
            ...(withHub
              ? [
                  async (app: HttpApp) => {
                    const settings = {
                      ...config,
                      wsAllowedOrigins: webSocketOrigins(config),
                      maxSessionsPerHub: withHub.settings.maxSessionsPerHub,
                    };
                    // One admission for both transports: per-IP limits and capacity count both.
                    const admission = sessionAdmission(withHub, settings);
                    await app.register(websocketRoutes, {
                      hub: withHub,
                      service,
                      authenticator,
                      settings,
                      logger,
                      observer: sessionEvents,
                      admission,
                    });
                    await app.register(sseRoutes, {
                      hub: withHub,
                      authenticator,
                      admission,
                      logger,
                      observer: sessionEvents,
                    });
                  },
                  ...demoPlugins(config, devCredentials),
                ]
              : []),
          ],
        })
      : // Projector and cleaner processes too answer health checks and Prometheus.
        await buildOperationsApp({ logger, readiness, plugins: [metricsRoutes(metrics)] });
    closers.push({
      name: 'http',
      close: async () => {
        // In-flight requests get a grace period; keep-alive connections that stay busy (or turn
        // idle after close began) would otherwise hold the shutdown until their timeout.
        const drainMs = Math.min(2000, config.shutdownTimeoutMs / 4);
        const force = setTimeout(() => http.server.closeAllConnections(), drainMs);
        try {
          await http.close();
        } finally {
          clearTimeout(force);
        }
      },
    });

    const grpc =
      config.roles.includes('api') && config.grpcPort >= 0
        ? createGrpcServer({
            service,
            authenticator,
            logger,
            interceptors: [metrics.grpcInterceptor()],
            onClientError: (error) => recordClientError(error.code),
          })
        : null;
    if (grpc) {
      closers.push({
        name: 'grpc',
        close: () => closeGrpc(grpc, Math.min(5000, config.shutdownTimeoutMs / 2)),
      });
    }

    return {
      backend,
      progress,
      projector,
      cleaner,
      hub,
      readCache,
      service,
      authenticator,
      metrics,
      http,
      grpc,
      devCredentials,
      async listen() {
        const httpUrl = await http.listen({ host: config.host, port: config.httpPort });
        const grpcPort = grpc ? await listenGrpc(grpc, config.host, config.grpcPort) : null;
        return { httpUrl, grpcPort };
      },
      close: () => closeAll(true),
    };
  } catch (err) {
    await closeAll(false);
    throw err;
  }
}
