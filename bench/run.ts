/**
 * `npm run bench [-- <name>…] [--quick]`: runs MiniPush's benchmarks against the real stack
 * (Kafka + MariaDB, brought up like the tests do) and the embedded default, writes one JSON
 * result per benchmark to bench-results/, and prints every figure next to its target.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BenchContext, Benchmark } from './lib/context.js';
import { killAllCentrifugo } from './lib/centrifugo.js';
import { killAllChildren } from './lib/child.js';
import { killAllServers } from './lib/deployment.js';
import { RESULTS_DIR, machine, table, writeResult, type BenchResult } from './lib/result.js';
import { acquireServices, type Services } from './lib/services.js';
import { diff } from './diff.js';
import { ingest } from './ingest.js';
import { fanout, nudge } from './nudge.js';
import { peers } from './peers.js';
import { readState } from './read-state.js';
import { rebuild } from './rebuild.js';
import { sessions } from './sessions.js';

const BENCHMARKS: readonly Benchmark[] = [
  ingest,
  nudge,
  diff,
  sessions,
  fanout,
  readState,
  rebuild,
  peers,
];

function usage(): string {
  return [
    'usage: npm run bench [-- <name>…] [--quick]',
    '',
    ...BENCHMARKS.map(
      (b) => `  ${b.name.padEnd(12)} ${b.description}${b.byNameOnly ? ' (only when named)' : ''}`,
    ),
    '',
    '  --quick      shorter windows: a smoke run, not the figures of record',
    '  --only=TEXT  run only the variants whose label contains TEXT (ingest: kafka/1, embedded/100…;\n' +
      '               peers: centrifugo, centrifugo-history, embedded, kafka)',
    '  --baseline=DIR  a built checkout of an earlier commit, run as the "before" variant in the same\n' +
      '               run: its hub and projector (fanout), projector (nudge), server (ingest)',
  ].join('\n');
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const quick = args.includes('--quick');
  const only = args.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? null;
  const baseline = args.find((a) => a.startsWith('--baseline='))?.slice('--baseline='.length);
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    process.stderr.write(`unknown benchmark(s): ${unknown.join(', ')}\n${usage()}\n`);
    return 2;
  }
  const chosen =
    names.length === 0
      ? BENCHMARKS.filter((b) => !b.byNameOnly)
      : BENCHMARKS.filter((b) => names.includes(b.name));

  const held: { services: Promise<Services> | null } = { services: null };
  const started = performance.now();
  const log = (message: string) => {
    const t = ((performance.now() - started) / 1000).toFixed(0).padStart(4);
    process.stderr.write(`[bench ${t}s] ${message}\n`);
  };
  const ctx: BenchContext = {
    quick,
    only,
    baseline: baseline ? path.resolve(baseline) : null,
    log,
    services: () => (held.services ??= acquireServices()),
  };
  const results: BenchResult[] = [];
  let failed = 0;
  try {
    for (const benchmark of chosen) {
      log(`${benchmark.name}: ${benchmark.description}`);
      const at = new Date().toISOString();
      const t0 = performance.now();
      try {
        const outcome = await benchmark.run(ctx);
        const result: BenchResult = {
          name: benchmark.name,
          startedAt: at,
          seconds: Math.round((performance.now() - t0) / 100) / 10,
          machine: machine(),
          rows: outcome.rows,
          ...(outcome.markdown === undefined ? {} : { markdown: outcome.markdown }),
          details: { quick, ...outcome.details },
        };
        results.push(result);
        log(`${benchmark.name}: done in ${result.seconds} s → ${writeResult(result)}`);
      } catch (err) {
        failed++;
        log(
          `${benchmark.name} FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
        );
        killAll();
      }
    }
  } finally {
    if (held.services) await (await held.services).release();
  }
  const m = machine();
  const summary = [
    `MiniPush benchmarks${quick ? ' (--quick)' : ''}, ${new Date().toISOString()}`,
    `machine: ${m.cores} cores (${m.cpu}), ${m.memoryGiB} GiB, Node ${m.node}, ${os.platform()}; ` +
      `load generators, Kafka and MariaDB share the box; total ${Math.round((performance.now() - started) / 1000)} s`,
    '',
    table(results),
    '',
    ...results.flatMap((r) =>
      r.markdown === undefined ? [] : [`## ${r.name}`, '', r.markdown, ''],
    ),
  ].join('\n');
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, quick ? 'summary-quick.md' : 'summary.md'), summary);
  process.stdout.write(`\n${summary}`);
  return failed > 0 ? 1 : 0;
}

/** SIGKILLs every process the benchmarks started (for a failed or interrupted run). */
function killAll(): void {
  killAllChildren();
  killAllServers();
  killAllCentrifugo();
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    killAll();
    process.exit(1);
  },
);
