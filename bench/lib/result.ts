import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT } from './services.js';

export const RESULTS_DIR = path.join(ROOT, 'bench-results');

/** One figure of a benchmark, next to its target. */
export interface Row {
  readonly metric: string;
  readonly value: number;
  readonly unit: string;
  /** The target as text, e.g. `≥ 30,000`; empty when the figure is informative only. */
  readonly target: string;
  /** Whether the target is met; null for informative figures. */
  readonly pass: boolean | null;
  /** Short conditions of this figure: backend, sizes, concurrency, duration. */
  readonly conditions: string;
}

export interface BenchResult {
  readonly name: string;
  readonly startedAt: string;
  readonly seconds: number;
  readonly machine: { cores: number; cpu: string; memoryGiB: number; node: string };
  readonly rows: Row[];
  /** The benchmark's own Markdown, printed under the summary table. */
  readonly markdown?: string;
  /** Everything else measured: CPU per process, raw counts, samples. */
  readonly details: Record<string, unknown>;
}

export function machine(): BenchResult['machine'] {
  return {
    cores: os.cpus().length,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
  };
}

export function atLeast(value: number, target: number): Pick<Row, 'target' | 'pass'> {
  return { target: `≥ ${fmt(target)}`, pass: value >= target };
}

export function atMost(value: number, target: number): Pick<Row, 'target' | 'pass'> {
  return { target: `≤ ${fmt(target)}`, pass: value <= target };
}

export function info(): Pick<Row, 'target' | 'pass'> {
  return { target: '', pass: null };
}

export function fmt(value: number): string {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3;
  return value.toLocaleString('en-US', { maximumFractionDigits: digits });
}

export function writeResult(result: BenchResult): string {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const file = path.join(RESULTS_DIR, `${result.name}.json`);
  fs.writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  return file;
}

/** The results as a Markdown table: every figure next to its target and conditions. */
export function table(results: readonly BenchResult[]): string {
  const lines = [
    '| benchmark | figure | value | target | ok | conditions |',
    '| --- | --- | --- | --- | --- | --- |',
  ];
  for (const result of results) {
    for (const row of result.rows) {
      const ok = row.pass === null ? '' : row.pass ? 'yes' : 'NO';
      lines.push(
        `| ${result.name} | ${row.metric} | ${fmt(row.value)} ${row.unit} | ${row.target} | ${ok} | ${row.conditions} |`,
      );
    }
  }
  return lines.join('\n');
}
