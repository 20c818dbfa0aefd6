/**
 * Centrifugo, the peer the `peers` benchmark measures MiniPush against: built once from the Go
 * module proxy into the services harness's cache, configured in a temp dir, bound to loopback.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { JWT_SECRET } from './deployment.js';
import { freePort, ROOT } from './services.js';
import { sleep } from './stats.js';

const run = promisify(execFile);

export const CENTRIFUGO_VERSION = 'v6.9.1';
const MODULE = 'github.com/centrifugal/centrifugo/v6';
const API_KEY = 'bench-centrifugo-api-key-0123456789';

/** The history a personal channel keeps in the `history` variant (the closest to durable). */
export const HISTORY = { size: 100, ttl: '300s' } as const;

/** The services harness's cache: MINIPUSH_CACHE_DIR, or .cache/ of the checkout. */
function cacheDir(): string {
  return process.env.MINIPUSH_CACHE_DIR ?? path.join(ROOT, '.cache');
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '')
    .split(path.delimiter)
    .some((dir) => dir !== '' && fs.existsSync(path.join(dir, command)));
}

/** The module version a Go binary was built from (`go version -m`), or null. */
async function builtVersion(binary: string): Promise<string | null> {
  try {
    const { stdout } = await run('go', ['version', '-m', binary]);
    const line = stdout.split('\n').find((l) => l.trim().startsWith(`mod\t${MODULE}\t`));
    return line?.trim().split('\t')[2] ?? null;
  } catch {
    return null;
  }
}

/**
 * The Centrifugo binary, built with `go install` from the Go module proxy into
 * `<cache>/bin` on first use; or why it cannot be had (no `go` on PATH).
 */
export async function centrifugoBinary(
  log: (message: string) => void,
): Promise<{ readonly binary: string } | { readonly skipped: string }> {
  const bin = path.join(cacheDir(), 'bin');
  const binary = path.join(bin, 'centrifugo');
  if (!onPath('go')) {
    return {
      skipped: `\`go\` is not on PATH: it builds Centrifugo ${CENTRIFUGO_VERSION} from the Go module proxy (install Go ≥ 1.26 to run this benchmark; the others do not need it)`,
    };
  }
  if (fs.existsSync(binary) && (await builtVersion(binary)) === CENTRIFUGO_VERSION) {
    return { binary };
  }
  log(`building Centrifugo ${CENTRIFUGO_VERSION} (first run only): go install ${MODULE}`);
  fs.mkdirSync(bin, { recursive: true });
  await run('go', ['install', `${MODULE}@${CENTRIFUGO_VERSION}`], {
    env: { ...process.env, GOBIN: bin, GOFLAGS: '-mod=mod' },
    maxBuffer: 64 * 1024 * 1024,
  });
  return { binary };
}

/**
 * Centrifugo's configuration: HMAC JWTs with the benchmark's secret (`sub` = uid), the memory
 * engine, every user subscribed server-side to its personal channel `personal:#<uid>`, the HTTP
 * API under a key, and nothing on any address but 127.0.0.1. With `history`, each personal
 * channel keeps its last publications (HISTORY) in the memory engine.
 */
function config(port: number, history: boolean): Record<string, unknown> {
  return {
    http_server: { address: '127.0.0.1', port },
    log: { level: 'warn' },
    usage_stats: { disabled: true },
    health: { enabled: true },
    engine: { type: 'memory' },
    http_api: { key: API_KEY },
    client: {
      token: { hmac_secret_key: JWT_SECRET },
      subscribe_to_user_personal_channel: {
        enabled: true,
        personal_channel_namespace: 'personal',
      },
    },
    channel: {
      namespaces: [
        {
          name: 'personal',
          ...(history ? { history_size: HISTORY.size, history_ttl: HISTORY.ttl } : {}),
        },
      ],
    },
  };
}

/** A running Centrifugo. */
export interface CentrifugoServer {
  readonly pid: number;
  /** http://127.0.0.1:<port>: the HTTP API's base. */
  readonly url: string;
  /** The WebSocket endpoint clients connect to. */
  readonly wsUrl: string;
  readonly apiKey: string;
  stop(): Promise<void>;
}

const alive = new Set<ChildProcess>();

/** SIGKILLs every Centrifugo the benchmarks started that still runs (for a failed run). */
export function killAllCentrifugo(): void {
  for (const child of alive) if (child.exitCode === null) child.kill('SIGKILL');
}

/** Starts Centrifugo on a free loopback port and resolves once /health answers. */
export async function startCentrifugo(
  binary: string,
  options: { history: boolean },
): Promise<CentrifugoServer> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'minipush-bench-centrifugo-'));
  const port = await freePort();
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config(port, options.history), null, 2));
  const child = spawn(binary, ['--config', file], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  alive.add(child);
  let output = '';
  const keep = (chunk: Buffer) => {
    output += chunk.toString();
    if (output.length > 20_000) output = output.slice(-10_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      alive.delete(child);
      fs.rmSync(dir, { recursive: true, force: true });
      resolve();
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const force = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(force);
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`Centrifugo exited early\n${output}`);
    }
    const healthy = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (healthy) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`Centrifugo did not answer /health in 30 s\n${output}`);
    }
    await sleep(100);
  }
  return {
    pid: child.pid!,
    url,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    apiKey: API_KEY,
    stop,
  };
}
