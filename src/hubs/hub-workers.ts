import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../logger.js';

/**
 * A hub deployment on more than one core: the primary process forks `count` workers with
 * node:cluster and holds the listening socket; each connection is handed to one worker in turn
 * (cluster's round-robin, the default on Linux). Each worker is a whole hub with its own hub id,
 * its own subscription to the heads stream and to the session bus, so the cluster-wide session
 * quota holds across workers exactly as it does across hub processes. The protocol is the same:
 * a client cannot tell a worker from a hub.
 */
export interface HubWorkers {
  /** `http://host:port`, the port all workers accept on. */
  readonly httpUrl: string;
  /** The gRPC port they share (api role), or null. */
  readonly grpcPort: number | null;
  /** The workers' process ids, as they are now (a worker that died is replaced). */
  pids(): number[];
  /** Stops every worker (each drains its sessions like a hub does) and resolves once all exited. */
  close(): Promise<void>;
}

export interface HubWorkersOptions {
  readonly count: number;
  readonly logger: Logger;
  /** A worker still running this long after it was asked to stop is killed, in ms. */
  readonly stopTimeoutMs: number;
}

/** What a worker tells the primary over the IPC channel. */
type WorkerMessage = {
  readonly type: 'minipush:hub-worker-ready';
  readonly httpUrl: string;
  readonly grpcPort: number | null;
};
/** What the primary tells a worker. */
const STOP = { type: 'minipush:hub-worker-stop' } as const;

/** A replaced worker is forked this long after the last one died, so a crash loop stays slow. */
const RESPAWN_DELAY_MS = 1000;

function isReady(message: unknown): message is WorkerMessage {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === 'minipush:hub-worker-ready'
  );
}

function isStop(message: unknown): boolean {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { type?: unknown }).type === STOP.type
  );
}

/** True in a process forked by {@link startHubWorkers}. */
export function isHubWorker(): boolean {
  return cluster.isWorker;
}

/**
 * Forks the workers (they run the same command line) and resolves once every one listens. A
 * worker that exits before it is ready fails the start, and the others are stopped.
 */
export async function startHubWorkers(options: HubWorkersOptions): Promise<HubWorkers> {
  const log = options.logger.child({ component: 'hub-workers' });
  const workers = new Set<Worker>();
  let closing = false;
  let httpUrl = '';
  let grpcPort: number | null = null;

  const fork = (): Promise<Worker> => {
    const worker = cluster.fork();
    workers.add(worker);
    return new Promise((resolve, reject) => {
      const onMessage = (message: unknown) => {
        if (!isReady(message)) return;
        httpUrl = message.httpUrl;
        grpcPort = message.grpcPort;
        worker.off('exit', onEarlyExit);
        worker.on('exit', (code, signal) => onExit(worker, code, signal));
        resolve(worker);
      };
      const onEarlyExit = (code: number | null, signal: string | null) => {
        workers.delete(worker);
        reject(
          new Error(
            `hub worker ${worker.process.pid} exited before it listened (${signal ?? code})`,
          ),
        );
      };
      worker.on('message', onMessage);
      worker.once('exit', onEarlyExit);
    });
  };

  const onExit = (worker: Worker, code: number | null, signal: string | null) => {
    workers.delete(worker);
    if (closing) return;
    // Its sessions reconnect to the others; the quota forgets them after the hub timeout.
    log.error({ pid: worker.process.pid, code, signal }, 'hub worker died; starting another');
    setTimeout(() => {
      if (closing) return;
      fork().catch((err: unknown) => log.error({ err }, 'could not replace a hub worker'));
    }, RESPAWN_DELAY_MS).unref();
  };

  const stopAll = async (): Promise<void> => {
    closing = true;
    const exits = [...workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          if (worker.isDead()) return resolve();
          const force = setTimeout(() => worker.process.kill('SIGKILL'), options.stopTimeoutMs);
          force.unref();
          worker.once('exit', () => {
            clearTimeout(force);
            resolve();
          });
          if (worker.isConnected()) worker.send(STOP);
          else worker.process.kill('SIGTERM');
        }),
    );
    await Promise.all(exits);
  };

  try {
    await Promise.all(Array.from({ length: options.count }, fork));
  } catch (err) {
    await stopAll();
    throw err;
  }
  log.info({ workers: options.count }, 'hub workers are listening');
  return {
    get httpUrl() {
      return httpUrl;
    },
    get grpcPort() {
      return grpcPort;
    },
    pids: () => [...workers].map((w) => w.process.pid ?? 0).filter((pid) => pid > 0),
    close: stopAll,
  };
}

/**
 * In a worker: tells the primary it listens, and stops with `close` once, on the primary's word
 * or on a signal of its own (a Ctrl-C reaches the whole process group, the primary's word too).
 */
export function serveAsHubWorker(
  listening: { readonly httpUrl: string; readonly grpcPort: number | null },
  logger: Logger,
  close: () => Promise<void>,
): void {
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    close().then(
      () => {
        logger.flush();
        process.exit(0);
      },
      (err: unknown) => {
        logger.error({ err }, 'hub worker shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('message', (message) => {
    if (isStop(message)) stop();
  });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  const ready: WorkerMessage = { type: 'minipush:hub-worker-ready', ...listening };
  process.send?.(ready);
}
