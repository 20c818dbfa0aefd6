import type { Row } from './result.js';
import type { Services } from './services.js';

/** What a benchmark gets from the runner. */
export interface BenchContext {
  /** The real Kafka and MariaDB, brought up on first use. */
  services(): Promise<Services>;
  /** Shorter windows (`--quick`): a smoke run, not the figures of record. */
  readonly quick: boolean;
  /** `--only=<text>`: run only the variants whose label contains it (e.g. `embedded/1`). */
  readonly only: string | null;
  /**
   * `--baseline=<dir>`: a checkout of an earlier commit, built (`npm run build`), whose server
   * benchmarks that support it run as a "before" variant in the same run.
   */
  readonly baseline: string | null;
  log(message: string): void;
}

/** A benchmark's outcome before the runner stamps it with time and machine. */
export interface Outcome {
  readonly rows: Row[];
  /** More Markdown to print and keep under the summary table (a benchmark's own table). */
  readonly markdown?: string;
  readonly details: Record<string, unknown>;
}

export interface Benchmark {
  readonly name: string;
  /** Left out of a run that names no benchmark (it needs more than the others, or is long). */
  readonly byNameOnly?: boolean;
  readonly description: string;
  run(ctx: BenchContext): Promise<Outcome>;
}
