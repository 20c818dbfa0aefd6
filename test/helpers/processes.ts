import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { expect } from 'vitest';
import { openBackend, prepareBackend } from '../../src/backend.js';
import { deploymentEnv, type Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { backendConfig } from './services.js';
import { API_KEY, JWT_SECRET } from './stack.js';

/** The `minipush` bin: starts tracing first when OTEL_* asks for it, then runs the CLI. */
export const CLI = path.resolve(import.meta.dirname, '../../dist/src/bin.js');

type Exit = { code: number | null; signal: NodeJS.Signals | null };

/**
 * `minipush <args>` in its own process, with its output kept for failure messages. Every one
 * is remembered so a suite can kill whatever still runs in `afterAll` ({@link killAll}).
 */
export interface MiniPushProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:port` once running (null before, and for roles without HTTP). */
  readonly url: string | null;
  readonly grpcPort: number | null;
  /** Every stdout log line, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Resolves once it logs that it is running; rejects if it exits first. */
  readonly running: Promise<void>;
  /** True until it exits. */
  isAlive(): boolean;
  /** What it printed lately, stdout and stderr. */
  output(): string;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Log lines at warn level and above, for failure messages. */
  problems(): string;
  readonly exited: Promise<Exit>;
  kill(signal?: NodeJS.Signals): Promise<Exit>;
}

export interface RunOptions {
  readonly cwd?: string;
  /** Lowers `ulimit -n` for the process. */
  readonly openFileLimit?: number;
}

const alive = new Set<ChildProcess>();

/** Kills every process the tests started that is still alive (for afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...alive].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  alive.clear();
}

/** Starts the built CLI with `args` and the given environment; does not wait for it. */
export function runMiniPush(
  args: readonly string[],
  env: Readonly<Record<string, string>>,
  options: RunOptions = {},
): MiniPushProcess {
  // With a limit, bash lowers `ulimit -n` and execs node in its place (same pid).
  const [command, argv] =
    options.openFileLimit === undefined
      ? [process.execPath, [CLI, ...args]]
      : [
          'bash',
          [
            '-c',
            `ulimit -n ${options.openFileLimit} && exec "$0" "$@"`,
            process.execPath,
            CLI,
            ...args,
          ],
        ];
  const child = spawn(command, argv, {
    ...(options.cwd ? { cwd: options.cwd } : {}),
    env: {
      PATH: process.env.PATH ?? '',
      MINIPUSH_LOG_LEVEL: 'info',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
      // Never the fixed defaults (8080, 9090): a `npm start` or a bench on this machine, or
      // another suite's process, would hold them and this process would exit at start.
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  alive.add(child);
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  let recent: string[] = [];
  const keep = (text: string) => {
    recent.push(text);
    if (recent.length > 400) recent = recent.slice(-200);
  };
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    keep(chunk.toString());
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      alive.delete(child);
      resolve({ code, signal });
    });
  });
  let markRunning!: () => void;
  let failRunning!: (err: Error) => void;
  const running = new Promise<void>((resolve, reject) => {
    markRunning = resolve;
    failRunning = reject;
  });
  running.catch(() => undefined);
  void exited.then(({ code, signal }) =>
    failRunning(new Error(`minipush exited early (${code ?? signal})\n${stderr}`)),
  );
  const started: { url: string | null; grpcPort: number | null } = { url: null, grpcPort: null };
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    keep(`${line}\n`);
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    logs.push(entry);
    if (entry.msg === 'minipush is running') {
      started.url = typeof entry.http === 'string' ? entry.http : null;
      started.grpcPort = typeof entry.grpcPort === 'number' ? entry.grpcPort : null;
      markRunning();
    }
  });
  return {
    child,
    get url() {
      return started.url;
    },
    get grpcPort() {
      return started.grpcPort;
    },
    logs,
    running,
    isAlive: () => child.exitCode === null && child.signalCode === null,
    output: () => recent.join(''),
    stderr: () => stderr,
    problems: () =>
      [
        ...logs
          .filter((l) => ['warn', 'error', 'fatal'].includes(String(l.level)) || l.msg === 'closed')
          .map((l) => JSON.stringify(l)),
        stderr,
      ].join('\n'),
    exited,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `minipush serve …` (or `args`) and resolves once it logs that it is running. */
export async function spawnMiniPush(
  env: Record<string, string>,
  args: string[] = ['serve'],
  timeoutMs = 60_000,
  options: RunOptions = {},
): Promise<MiniPushProcess> {
  const started = runMiniPush(args, env, options);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      started.child.kill('SIGKILL');
      reject(new Error(`minipush did not start in ${timeoutMs} ms\n${started.stderr()}`));
    }, timeoutMs);
  });
  try {
    await Promise.race([started.running, timeout]);
  } finally {
    clearTimeout(timer);
  }
  return started;
}

/**
 * A fresh Kafka + MariaDB backend with its tables and topics made, and the environment of
 * `minipush` processes on it with `settings` (and the API key and JWT secret of the tests).
 */
export async function preparedDeployment(
  settings: Partial<Config>,
): Promise<{ env: Record<string, string>; cleanup: () => Promise<void> }> {
  const made = await backendConfig('kafka+mysql', {
    apiKeys: [API_KEY],
    jwtSecret: JWT_SECRET,
    ...settings,
  });
  const backend = openBackend(made.config, createLogger('warn'));
  try {
    await prepareBackend(made.config, backend, createLogger('warn'));
  } finally {
    await backend.close();
  }
  return {
    env: deploymentEnv(made.config, { ...settings, httpPort: 0 }),
    cleanup: () => made.cleanup(),
  };
}

/** Publishes one event over REST without waiting; the API must accept it. */
export async function publishOver(url: string, to: readonly number[]): Promise<void> {
  const res = await fetch(`${url}/v1/events`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ to, body: { at: Date.now() } }),
  });
  expect(res.status).toBe(202);
}
