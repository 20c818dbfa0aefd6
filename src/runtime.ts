import { buildApp, type App } from './app.js';
import { openBackend } from './backend.js';
import type { Config } from './config.js';
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
}

/** Opens the configured backend, builds the app on it and listens: what `minipush serve` runs. */
export async function startRuntime(options: RuntimeOptions): Promise<Runtime> {
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
