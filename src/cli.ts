#!/usr/bin/env node
import {
  commandLimits,
  ConfigError,
  loadConfig,
  redacted,
  settingsHelp,
  settingsMarkdown,
  type Config,
} from './config.js';
import { createLogger, type Logger } from './logger.js';
import { prepareBackend, openBackend } from './backend.js';
import { isHubWorker, serveAsHubWorker, startHubWorkers } from './hubs/hub-workers.js';
import { checkPorts, PortInUse, startRuntime, type Runtime } from './runtime.js';
import { DataDirInUse } from './store/data-dir-lock.js';
import { rebuildProjections, RebuildRefused } from './projections/rebuild.js';
import { migrateDown, migrateLatest } from './store/database.js';
import { packageVersion } from './version.js';
import { verifyProjections } from './projections/verify-projections.js';
import { ensureTopics } from './log/topics.js';

const USAGE = `Usage: minipush <command> [settings]

Commands:
  serve      run the service (roles from --roles; all by default). With no Kafka and
             MySQL settings it runs the embedded default: one process, data in --data-dir.
  migrate    apply database migrations (--down rolls all of them back)
  prepare    apply migrations and create missing Kafka topics
  topics     create the Kafka topics with their partitions, compaction and retention
  verify     check the projections' invariants (gap-free seqs, heads, read bits, offsets);
             exits 1 and lists the violations when any is broken
  rebuild    drop the read model and project the whole commands log again, up to its end
             when the rebuild starts. Stop every projector first (serve --roles without
             projector, or stop the processes); needs the full log (--log-retention -1).
  config     print the effective configuration (secrets masked)
  help       show this help

Every setting can be given as a flag or as an environment variable.

`;

function version(): string {
  return packageVersion();
}

function help(): string {
  return `${USAGE}${settingsHelp()}\n`;
}

/** What a person starting the service needs: where to connect and how to publish. */
function banner(config: Config, runtime: Runtime): string {
  const lines: string[] = [];
  const kind = runtime.backend.kind;
  lines.push(
    kind.log === 'embedded' && kind.store === 'sqlite'
      ? `MiniPush ${version()} is running on the embedded default (SQLite and log in ${config.dataDir})`
      : `MiniPush ${version()} is running (log: ${kind.log}, store: ${kind.store}, roles: ${config.roles.join(',')})`,
  );
  const url = runtime.httpUrl;
  if (url && !config.roles.includes('api') && !config.roles.includes('hub'))
    lines.push(`  Health     ${url}/readyz   (metrics: ${url}/metrics)`);
  else if (url) {
    const ws = url.replace(/^http/, 'ws');
    lines.push(`  REST       ${url}/v1   (OpenAPI: ${url}/v1/openapi.json)`);
    if (config.roles.includes('hub')) lines.push(`  WebSocket  ${ws}/v1/ws?token=<user JWT>`);
    if (config.demoEnabled && config.roles.includes('hub')) lines.push(`  Demo       ${url}/demo`);
  }
  if (runtime.grpcPort !== null)
    lines.push(`  gRPC       ${config.host}:${runtime.grpcPort}   (server reflection on)`);
  const dev = runtime.devCredentials;
  if (dev && url) {
    const key = config.apiKeys[0] ?? dev.apiKey;
    lines.push(`  API key    ${key}   (kept in ${config.dataDir}/dev-credentials.json)`);
    if (config.devTokens)
      lines.push(
        `  User token curl -s -X POST ${url}/v1/dev/token -H 'content-type: application/json' -d '{"uid":1}'`,
      );
    lines.push('Publish an event to user 1:');
    lines.push(
      `  curl -s -X POST ${url}/v1/events -H 'authorization: Bearer ${key}' -H 'content-type: application/json' -d '{"to":[1],"body":{"text":"hello"}}'`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Installs SIGINT/SIGTERM handlers that run `close` once and exit 0 (1 on a failed close). */
function onShutdown(logger: Logger, config: Config, close: () => Promise<void>): void {
  let closing = false;
  const handler = (signal: NodeJS.Signals) => {
    if (closing) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    closing = true;
    logger.info({ signal }, 'shutting down gracefully');
    const deadline = setTimeout(() => {
      logger.error('graceful shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeoutMs);
    deadline.unref();
    close().then(
      () => {
        logger.info('stopped');
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

async function main(argv: string[]): Promise<number> {
  const [command = 'help', ...rest] = argv;
  if (command === 'help' && rest.includes('--markdown')) {
    process.stdout.write(`${settingsMarkdown()}\n`);
    return 0;
  }
  if (command === 'help' || command === '--help' || command === '-h' || rest.includes('--help')) {
    process.stdout.write(help());
    return 0;
  }
  if (command === 'version' || command === '--version') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const flags = rest.filter((arg) => arg !== '--down');
  const config = loadConfig({ env: process.env, argv: flags });
  const logger = createLogger(config.logLevel);

  switch (command) {
    case 'serve': {
      if (isHubWorker()) {
        const runtime = await startRuntime({ config, logger, checkPorts: false });
        serveAsHubWorker({ httpUrl: runtime.httpUrl, grpcPort: runtime.grpcPort }, logger, () =>
          runtime.close(),
        );
        logger.info({ http: runtime.httpUrl, pid: process.pid }, 'hub worker is running');
        return -1;
      }
      if (config.hubWorkers > 1) {
        await checkPorts(config);
        const workers = await startHubWorkers({
          count: config.hubWorkers,
          logger,
          stopTimeoutMs: Math.max(1000, config.shutdownTimeoutMs - 1000),
        });
        onShutdown(logger, config, () => workers.close());
        logger.info(
          {
            roles: config.roles,
            http: workers.httpUrl,
            grpcPort: workers.grpcPort,
            workers: workers.pids(),
          },
          'minipush is running',
        );
        const ws = workers.httpUrl.replace(/^http/, 'ws');
        process.stderr.write(
          `MiniPush ${version()} is running: ${config.hubWorkers} hub workers (roles: ${config.roles.join(',')})\n` +
            `  WebSocket  ${ws}/v1/ws?token=<user JWT>\n`,
        );
        return -1;
      }
      const runtime = await startRuntime({ config, logger });
      onShutdown(logger, config, () => runtime.close());
      logger.info(
        {
          roles: config.roles,
          backend: runtime.backend.kind,
          http: runtime.httpUrl,
          grpcPort: runtime.grpcPort,
        },
        'minipush is running',
      );
      process.stderr.write(banner(config, runtime));
      return -1;
    }
    case 'migrate': {
      const backend = openBackend(config, logger);
      try {
        const names = rest.includes('--down')
          ? await migrateDown(backend.db)
          : await migrateLatest(backend.db);
        process.stdout.write(
          names.length === 0
            ? 'nothing to do\n'
            : `${rest.includes('--down') ? 'rolled back' : 'applied'}: ${names.join(', ')}\n`,
        );
      } finally {
        await backend.close();
      }
      return 0;
    }
    case 'topics': {
      if (config.kafkaBrokers.length === 0) {
        throw new ConfigError('minipush topics needs MINIPUSH_KAFKA_BROKERS / --kafka-brokers');
      }
      const backend = openBackend(config, logger);
      try {
        const admin = backend.kafka!.admin();
        await admin.connect();
        try {
          const created = await ensureTopics(admin, config);
          process.stdout.write(
            created.length === 0 ? 'all topics exist\n' : `created: ${created.join(', ')}\n`,
          );
        } finally {
          await admin.disconnect();
        }
      } finally {
        await backend.close();
      }
      return 0;
    }
    case 'prepare': {
      const backend = openBackend(config, logger);
      try {
        await prepareBackend(config, backend, logger);
      } finally {
        await backend.close();
      }
      return 0;
    }
    case 'verify': {
      const backend = openBackend(config, logger, { exclusive: false });
      try {
        const logEnds = await backend.log.endOffsets().catch(() => undefined);
        const report = await verifyProjections(backend.db, {
          topic: backend.log.topic,
          ...(logEnds ? { logEnds } : {}),
        });
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
        return report.ok ? 0 : 1;
      } finally {
        await backend.close();
      }
    }
    case 'rebuild': {
      const backend = openBackend(config, logger);
      try {
        await prepareBackend(config, backend, logger);
        const result = await rebuildProjections({
          backend,
          limits: commandLimits(config),
          logger,
        });
        const seconds = result.durationMs / 1000;
        process.stdout.write(
          `rebuilt ${result.deliveries} deliveries from ${result.records} records ` +
            `up to offsets ${result.endOffsets.join(',')} in ${seconds.toFixed(1)} s ` +
            `(${Math.round(result.deliveriesPerSecond)} deliveries/s)\n`,
        );
      } catch (err) {
        if (!(err instanceof RebuildRefused)) throw err;
        process.stderr.write(`minipush rebuild: refused: ${err.message}\n`);
        return 1;
      } finally {
        await backend.close();
      }
      return 0;
    }
    case 'config':
      process.stdout.write(`${JSON.stringify(redacted(config), null, 2)}\n`);
      return 0;
    default:
      process.stderr.write(`minipush: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      process.stderr.write(`minipush: invalid configuration: ${err.message}\n`);
      process.exitCode = 2;
      return;
    }
    if (err instanceof PortInUse || err instanceof DataDirInUse) {
      process.stderr.write(`minipush: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    process.stderr.write(
      `minipush: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);
