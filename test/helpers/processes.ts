import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

/** The built CLI; `npm run build` must have run (npm test does it). */
export const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

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
