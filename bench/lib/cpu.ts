import fs from 'node:fs';
import os from 'node:os';
import { sleep } from './stats.js';

const TICK = 100; // USER_HZ on Linux

interface Ticks {
  readonly user: number;
  readonly sys: number;
}

function statFields(pid: number | string): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which may contain spaces: ppid is 4, utime and stime 14, 15.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU of a process and of every process under it (a hub's cluster workers), user and kernel
 * time apart; null once the process is gone.
 */
function processTicks(pid: number): Ticks | null {
  const own = statFields(pid);
  if (!own) return null;
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = Number(statFields(entry)?.[1]);
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid)!.push(Number(entry));
  }
  let user = 0;
  let sys = 0;
  const queue = [pid];
  while (queue.length > 0) {
    const next = queue.pop()!;
    const fields = next === pid ? own : statFields(next);
    if (fields) {
      user += Number(fields[11]);
      sys += Number(fields[12]);
    }
    queue.push(...(children.get(next) ?? []));
  }
  return { user, sys };
}

function systemTicks(): { busy: number; total: number } {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (values[3] ?? 0) + (values[4] ?? 0);
  const total = values.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Pids of the services' own processes (the Kafka broker's JVM, mariadbd), found by command line. */
export function servicePids(): Record<string, number> {
  const out: Record<string, number> = {};
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    if (cmdline.includes('kafka.Kafka') && out.kafka === undefined) out.kafka = Number(entry);
    else if (
      cmdline.startsWith('/usr/sbin/mariadbd') ||
      cmdline.split('\0')[0]?.endsWith('mariadbd')
    )
      out.mariadb ??= Number(entry);
  }
  return out;
}

/**
 * CPU use over a window: per labelled process (with its child processes) in % of one core, and
 * the box's in % of all.
 */
export interface CpuReport {
  readonly seconds: number;
  readonly processes: Record<string, number>;
  /** The same, user and kernel (system) time apart, in % of one core. */
  readonly split: Record<string, { readonly user: number; readonly sys: number }>;
  /** CPU seconds each used over the window (user + kernel). */
  readonly cpuSeconds: Record<string, number>;
  readonly systemBusyPercent: number;
  readonly cores: number;
}

/** Starts measuring; `stop()` returns what each process used since. */
export function cpuWindow(pids: Record<string, number>): { stop(): CpuReport } {
  const started = performance.now();
  const before = Object.fromEntries(
    Object.entries(pids).map(([label, pid]) => [label, processTicks(pid)]),
  );
  const sysBefore = systemTicks();
  return {
    stop() {
      const seconds = (performance.now() - started) / 1000;
      const processes: Record<string, number> = {};
      const split: Record<string, { user: number; sys: number }> = {};
      const cpuSeconds: Record<string, number> = {};
      const percent = (ticks: number) => Math.round(((ticks / TICK) * 100) / seconds);
      for (const [label, pid] of Object.entries(pids)) {
        const a = before[label];
        const b = processTicks(pid);
        if (a === null || a === undefined || b === null) continue;
        processes[label] = percent(b.user + b.sys - a.user - a.sys);
        split[label] = { user: percent(b.user - a.user), sys: percent(b.sys - a.sys) };
        cpuSeconds[label] = (b.user + b.sys - a.user - a.sys) / TICK;
      }
      const sysAfter = systemTicks();
      const busy = sysAfter.busy - sysBefore.busy;
      const total = sysAfter.total - sysBefore.total;
      const systemBusyPercent = total > 0 ? Math.round((busy / total) * 100) : 0;
      const cores = os.cpus().length;
      const accounted = Object.values(processes).reduce((a, b) => a + b, 0);
      // Everything else on the box (the kernel's own work, other users' processes), in % of a core.
      processes.other = Math.max(0, systemBusyPercent * cores - accounted);
      return {
        seconds: Math.round(seconds * 10) / 10,
        processes,
        split,
        cpuSeconds,
        systemBusyPercent,
        cores,
      };
    },
  };
}

/** Resident set size of a process in bytes. */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}

/**
 * RSS of an idle process once it stopped moving: the connection burst leaves garbage that V8's
 * memory reducer collects and returns a few seconds after allocation calms down. Takes the
 * lowest of the last five one-second samples once they agree within 1 MiB, 40 s at most.
 */
export async function settledRss(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 40; i++) {
    await sleep(1000);
    samples.push(rssBytes(pid));
    const last = samples.slice(-5);
    if (last.length === 5 && Math.max(...last) - Math.min(...last) < 1024 * 1024) {
      return Math.min(...last);
    }
  }
  return Math.min(...samples.slice(-5));
}
