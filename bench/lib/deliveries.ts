import type { LoadProcess, Message } from './child.js';
import { cpuWindow, type CpuReport } from './cpu.js';

/** What the ws-clients processes received while one command of theirs ran. */
export interface DeliveryWindow {
  /** Deliveries received by all the processes, per second of the window. */
  readonly perSecond: number;
  readonly delivered: number;
  readonly seconds: number;
  readonly cpu: CpuReport;
  /** Each process's answer to the command. */
  readonly answers: Message[];
  /** Each process's counts after the window (sessions, closes, publish errors). */
  readonly after: Message[];
}

function counts(clients: readonly LoadProcess[]): Promise<Message[]> {
  return Promise.all(clients.map((c) => c.ask({ type: 'count' }, 'counts')));
}

function total(messages: readonly Message[]): number {
  return messages.reduce((sum, m) => sum + Number(m.deliveries), 0);
}

/**
 * Sends `command` to every ws-clients process at once and counts the deliveries they receive
 * until the last one answers (`answer`): no credit for a backlog drained afterwards. CPU is
 * measured over the same window for `pids`.
 */
export async function deliveryWindow(
  clients: readonly LoadProcess[],
  pids: Record<string, number>,
  command: Message,
  answer: string,
  timeoutMs: number,
): Promise<DeliveryWindow> {
  const before = await counts(clients);
  const window = cpuWindow(pids);
  const started = performance.now();
  const answers = await Promise.all(clients.map((c) => c.ask(command, answer, timeoutMs)));
  const after = await counts(clients);
  const seconds = (performance.now() - started) / 1000;
  const cpu = window.stop();
  const delivered = total(after) - total(before);
  return { perSecond: delivered / seconds, delivered, seconds, cpu, answers, after };
}

/** Deliveries received so far by all the processes. */
export async function deliveredSoFar(clients: readonly LoadProcess[]): Promise<number> {
  return total(await counts(clients));
}
