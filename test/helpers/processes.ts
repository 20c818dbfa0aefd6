import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { SETTINGS, type Config } from '../../src/config.js';

// The `minipush` bin: starts tracing first when OTEL_* asks for it, then runs the CLI.
const cli = path.resolve(import.meta.dirname, '../../dist/src/bin.js');

export interface MiniPushProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:port` once running (null for roles without HTTP). */
  readonly url: string | null;
  readonly grpcPort: number | null;
  /** Every stdout log line, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();

/** Kills every process the tests started that is still alive (for afterAll). */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  running.clear();
}

/** Runs the built CLI (`minipush serve …`) and resolves once it logs that it is running. */
export function spawnMiniPush(
  env: Record<string, string>,
  args: string[] = ['serve'],
  timeoutMs = 60_000,
): Promise<MiniPushProcess> {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env.PATH ?? '', MINIPUSH_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const logs: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`minipush did not start in ${timeoutMs} ms\n${stderr}`));
    }, timeoutMs);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`minipush exited early (${code ?? signal})\n${stderr}`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(entry);
      if (entry.msg === 'minipush is running') {
        clearTimeout(timer);
        resolve({
          child,
          url: typeof entry.http === 'string' ? entry.http : null,
          grpcPort: typeof entry.grpcPort === 'number' ? entry.grpcPort : null,
          logs,
          exited,
          kill(signal: NodeJS.Signals = 'SIGTERM') {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            return exited;
          },
        });
      }
    });
  });
}

/** The MINIPUSH_* environment that reproduces these config values in a child process. */
export function deploymentEnv(values: Partial<Config>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const setting = SETTINGS[name as keyof Config];
    env[setting.env] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}
