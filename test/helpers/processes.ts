import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';

/** The `minipush` bin: starts tracing first when OTEL_* asks for it, then runs the CLI. */
export const CLI = path.resolve(import.meta.dirname, '../../dist/src/bin.js');
const cli = CLI;

export interface MiniPushProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:port` once running (null for roles without HTTP). */
  readonly url: string | null;
  readonly grpcPort: number | null;
  /** Every stdout log line, parsed. */
  readonly logs: Array<Record<string, unknown>>;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Log lines at warn level and above, for failure messages. */
  problems(): string;
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
  options: { openFileLimit?: number } = {},
): Promise<MiniPushProcess> {
  // With a limit, bash lowers `ulimit -n` and execs node in its place (same pid).
  const [command, argv] =
    options.openFileLimit === undefined
      ? [process.execPath, [cli, ...args]]
      : [
          'bash',
          [
            '-c',
            `ulimit -n ${options.openFileLimit} && exec "$0" "$@"`,
            process.execPath,
            cli,
            ...args,
          ],
        ];
  const child = spawn(command, argv, {
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
          stderr: () => stderr,
          problems: () =>
            [
              ...logs
                .filter(
                  (l) => ['warn', 'error', 'fatal'].includes(String(l.level)) || l.msg === 'closed',
                )
                .map((l) => JSON.stringify(l)),
              stderr,
            ].join('\n'),
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

/**
 * `minipush <args>` in its own process, with its output kept for the failure message. Every
 * instance is remembered so a suite can kill whatever is still running in `afterAll`.
 */
export class MinipushProcess {
  private static readonly alive = new Set<MinipushProcess>();
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private output: string[] = [];

  constructor(args: readonly string[], env: Readonly<Record<string, string>>, cwd: string) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd,
      env: { PATH: process.env.PATH ?? '', KAFKAJS_NO_PARTITIONER_WARNING: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    MinipushProcess.alive.add(this);
    const keep = (chunk: Buffer) => {
      this.output.push(chunk.toString('utf8'));
      if (this.output.length > 200) this.output = this.output.slice(-100);
    };
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        MinipushProcess.alive.delete(this);
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** What the process printed lately. */
  get log(): string {
    return this.output.join('');
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal);
    await this.exited;
  }

  /** Kills every process this module started that is still running. */
  static async killAll(): Promise<void> {
    await Promise.all([...MinipushProcess.alive].map((p) => p.kill('SIGKILL')));
  }
}
