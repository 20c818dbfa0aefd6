import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import readline from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/services.js';
import { API_KEY, JWT_SECRET, signUserToken } from '../helpers/stack.js';
import { connect } from '../helpers/ws-client.js';

const bin = path.resolve(import.meta.dirname, '../../dist/src/bin.js');

/** Counts connections to a port, such as the OTLP defaults a stray exporter would use. */
async function listen(
  port: number,
): Promise<{ connections: () => number; close(): Promise<void> }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  return {
    connections: () => count,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface Run {
  stdout: Array<Record<string, unknown>>;
  stderr: string;
  exit: { code: number | null; signal: NodeJS.Signals | null };
}

/** Runs `minipush serve` on the embedded default, publishes and nudges once, then SIGTERMs it. */
async function serveOnce(extraEnv: Record<string, string>): Promise<Run> {
  const dataDir = tempDir();
  const child = spawn(process.execPath, [bin, 'serve'], {
    env: {
      PATH: process.env.PATH ?? '',
      MINIPUSH_DATA_DIR: dataDir,
      MINIPUSH_HTTP_PORT: '0',
      MINIPUSH_GRPC_PORT: '0',
      MINIPUSH_API_KEYS: API_KEY,
      MINIPUSH_JWT_SECRET: JWT_SECRET,
      MINIPUSH_LOG_LEVEL: 'debug',
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: Array<Record<string, unknown>> = [];
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<Run['exit']>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`did not start:\n${stderr}`)), 30_000);
      void exited.then(() => reject(new Error(`exited early:\n${stderr}`)));
      readline.createInterface({ input: child.stdout }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        stdout.push(entry);
        if (entry.msg === 'minipush is running') {
          clearTimeout(timer);
          resolve(String(entry.http));
        }
      });
    });
    const uid = 4242;
    const socket = await connect(`${url.replace('http', 'ws')}/v1/ws`, {
      token: await signUserToken(uid),
    });
    await socket.next((m) => m.type === 'hello');
    const res = await fetch(`${url}/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ to: [uid], body: { hello: true } }),
    });
    expect(res.status).toBe(202);
    expect(await socket.next((m) => m.type === 'head')).toMatchObject({ headSeq: 1 });
    await socket.close();
    child.kill('SIGTERM');
    return { stdout, stderr, exit: await exited };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('minipush without OpenTelemetry settings', () => {
  let http: Awaited<ReturnType<typeof listen>>;
  let grpc: Awaited<ReturnType<typeof listen>>;

  beforeAll(async () => {
    // The OTLP defaults (4318 HTTP, 4317 gRPC): a wrongly started SDK would export here.
    http = await listen(4318);
    grpc = await listen(4317);
  });

  afterAll(async () => {
    await http?.close();
    await grpc?.close();
  });

  function expectQuiet(run: Run) {
    expect(run.exit).toEqual({ code: 0, signal: null });
    expect(run.stderr).not.toMatch(/opentelemetry|otlp|export|traces|ECONNREFUSED/i);
    const problems = run.stdout.filter((l) => l.level === 'error' || l.level === 'warn');
    expect(problems).toEqual([]);
    // No line claims a trace: nothing started one.
    expect(run.stdout.filter((l) => 'trace_id' in l)).toEqual([]);
    expect(http.connections() + grpc.connections()).toBe(0);
  }

  it('should serve, publish and nudge with no exporter and no exporter errors', async () => {
    expectQuiet(await serveOnce({}));
  });

  it('should start no SDK when OTEL_SDK_DISABLED=true, even with an endpoint set', async () => {
    expectQuiet(
      await serveOnce({
        OTEL_SDK_DISABLED: 'true',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      }),
    );
  });
});
