import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/** A message between a benchmark and one of its load processes. */
export interface Message {
  readonly type: string;
  readonly [key: string]: unknown;
}

const children = new Set<ChildProcess>();

/** SIGKILLs every load process still running (for a failed run). */
export function killAllChildren(): void {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
}

/**
 * A load generator in its own process (bench/load/<name>.ts, built), driven by IPC messages:
 * the parent sends commands, the child answers with typed messages.
 */
export class LoadProcess {
  readonly child: ChildProcess;
  private readonly inbox: Message[] = [];
  private readonly waiters: Array<() => void> = [];
  private exitCode: number | null | undefined = undefined;
  private stderr = '';

  constructor(name: string, options: { execArgv?: string[] } = {}) {
    this.child = fork(path.join(import.meta.dirname, '..', 'load', `${name}.js`), [], {
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      serialization: 'advanced',
      env: { ...process.env, KAFKAJS_NO_PARTITIONER_WARNING: '1' },
    });
    children.add(this.child);
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr += chunk.toString();
      if (this.stderr.length > 20_000) this.stderr = this.stderr.slice(-10_000);
    });
    this.child.on('message', (message: Message) => {
      this.inbox.push(message);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.child.once('exit', (code) => {
      children.delete(this.child);
      this.exitCode = code;
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  send(message: Message): void {
    this.child.send(message);
  }

  /** The next message of this type (skipping others of other types), within the timeout. */
  next<T extends Message = Message>(type: string, timeoutMs = 120_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new Error(`no "${type}" from load process within ${timeoutMs} ms\n${this.stderr}`),
          ),
        timeoutMs,
      );
      const check = () => {
        const index = this.inbox.findIndex((m) => m.type === type || m.type === 'error');
        if (index >= 0) {
          const [message] = this.inbox.splice(index, 1);
          clearTimeout(timer);
          if (message!.type === 'error')
            reject(new Error(`load process failed: ${String(message!.message)}`));
          else resolve(message as T);
        } else if (this.exitCode !== undefined) {
          clearTimeout(timer);
          reject(
            new Error(`load process exited (${this.exitCode}) before "${type}"\n${this.stderr}`),
          );
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Sends a command and waits for the answer of the given type. */
  async ask<T extends Message = Message>(
    message: Message,
    answer: string,
    timeoutMs?: number,
  ): Promise<T> {
    this.send(message);
    return this.next<T>(answer, timeoutMs);
  }

  async stop(): Promise<void> {
    if (this.exitCode !== undefined) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const force = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(force);
  }
}

/** In a load process: handles the parent's commands, reporting failures as `error` messages. */
export function serve(handler: (message: Message) => Promise<void> | void): void {
  const fail = (err: unknown) => {
    process.send?.({
      type: 'error',
      message: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
  };
  process.on('message', (message: Message) => {
    try {
      const result = handler(message);
      if (result instanceof Promise) result.catch(fail);
    } catch (err) {
      fail(err);
    }
  });
  process.on('disconnect', () => process.exit(0));
}

export function reply(message: Message): void {
  process.send?.(message);
}
