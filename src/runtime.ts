import net from 'node:net';
import { buildApp, type App } from './app.js';
import { openBackend } from './backend.js';
import { SETTINGS, type Config } from './config.js';
import type { Logger } from './logger.js';
import { flushTraces } from './telemetry/setup.js';

/** A running MiniPush process: the roles it was asked for, over one backend, listening. */
export interface Runtime extends Omit<App, 'listen'> {
  /** `http://host:port` the app listens on. */
  readonly httpUrl: string;
  readonly grpcPort: number | null;
  /** Stops taking work, drains, commits and closes everything, the backend last. */
  close(): Promise<void>;
}

export interface RuntimeOptions {
  readonly config: Config;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Applies migrations and creates topics first (the embedded default always does). */
  readonly prepare?: boolean;
  /**
   * Checks first that the fixed ports are free (default true). Off in a hub worker: the
   * cluster's primary checked them and holds the listening socket the workers share.
   */
  readonly checkPorts?: boolean;
}

/** A port this process is told to listen on is taken. */
export class PortInUse extends Error {
  override readonly name = 'PortInUse';
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EADDRINUSE' ? resolve(false) : reject(err),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * Fails before anything starts (migrations, a projector taking partitions) when a fixed port
 * is taken, naming the setting that moves it.
 */
export async function checkPorts(config: Config): Promise<void> {
  const wanted: Array<{ port: number; key: 'httpPort' | 'grpcPort' }> = [
    { port: config.httpPort, key: 'httpPort' },
  ];
  if (config.roles.includes('api') && config.grpcPort > 0)
    wanted.push({ port: config.grpcPort, key: 'grpcPort' });
  for (const { port, key } of wanted) {
    if (port === 0 || (await portFree(config.host, port))) continue;
    const setting = SETTINGS[key];
    throw new PortInUse(
      `port ${port} on ${config.host} is in use by another process; ` +
        `stop it or choose another port with --${setting.flag} / ${setting.env}`,
    );
  }
}

/** Opens the configured backend, builds the app on it and listens: what `minipush serve` runs. */
export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
  if (options.checkPorts ?? true) await checkPorts(options.config);
  const backend = openBackend(options.config, options.logger);
  let app: App | null = null;
  try {
    app = await buildApp({ ...options, backend });
    const { httpUrl, grpcPort } = await app.listen();
    const built = app;
    return {
      ...built,
      httpUrl,
      grpcPort,
      async close() {
        await built.close();
        await backend.close();
        await flushTraces();
      },
    };
  } catch (err) {
    await app?.close().catch(() => undefined);
    await backend.close().catch(() => undefined);
    throw err;
  }
}
