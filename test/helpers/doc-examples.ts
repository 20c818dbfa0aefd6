import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { expect } from 'vitest';

const run = promisify(execFile);

export interface DocExample {
  /** Line of the command block in the document, for failure messages. */
  readonly line: number;
  readonly command: string;
  readonly expected: string;
  readonly format: 'json' | 'text';
}

/** Each ```sh block followed by a ```json or ```text block showing what it prints. */
export function docExamples(file: string): DocExample[] {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const blocks: Array<{ lang: string; body: string; line: number }> = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w+)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== '```'; i++) body.push(lines[i]!);
    blocks.push({ lang: open[1]!, body: body.join('\n'), line: start + 1 });
  }
  const examples: DocExample[] = [];
  for (let i = 0; i < blocks.length; i++) {
    const block = blocks[i]!;
    const next = blocks[i + 1];
    if (block.lang === 'sh' && next && (next.lang === 'json' || next.lang === 'text')) {
      examples.push({
        line: block.line,
        command: block.body,
        expected: next.body,
        format: next.lang,
      });
      i++;
    }
  }
  return examples;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Compares a documented answer with the real one: same shape and values, except values that
 * differ per run (times, positions, generated ids, session ids), which must only look right.
 */
export function matchesDocumented(actual: unknown, documented: unknown, path = '$'): void {
  const key = path.split('.').pop() ?? '';
  if (['createTime', 'time', 'logTime', 'tokenExpiresAt'].includes(key)) {
    expect(Number(actual), path).toBeGreaterThan(1_000_000_000_000);
    return;
  }
  if (key === 'position') {
    expect(String(actual), path).toMatch(/^\d+:\d+(,\d+:\d+)*$/);
    return;
  }
  if (
    ['sessionId', 'hubId'].includes(key) ||
    (typeof documented === 'string' && UUID.test(documented))
  ) {
    expect(String(actual), path).toMatch(UUID);
    return;
  }
  if (Array.isArray(documented)) {
    expect(Array.isArray(actual), `${path} is an array`).toBe(true);
    expect((actual as unknown[]).length, `${path} length`).toBe(documented.length);
    documented.forEach((item, i) =>
      matchesDocumented((actual as unknown[])[i], item, `${path}[${i}]`),
    );
    return;
  }
  if (typeof documented === 'object' && documented !== null) {
    expect(typeof actual, `${path} is an object`).toBe('object');
    expect(Object.keys(actual as object).sort(), `${path} keys`).toEqual(
      Object.keys(documented).sort(),
    );
    for (const [k, v] of Object.entries(documented))
      matchesDocumented((actual as Record<string, unknown>)[k], v, `${path}.${k}`);
    return;
  }
  expect(actual, path).toEqual(documented);
}

/** Runs one example with bash and checks its output against the documented one. */
export async function checkExample(
  example: DocExample,
  env: Record<string, string>,
): Promise<void> {
  const { stdout } = await run('bash', ['-o', 'pipefail', '-c', example.command], {
    env: { ...process.env, ...env },
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { stdout?: string; stderr?: string }) => {
    // Examples that show an error print it and exit non-zero; their output is what counts.
    if (err.stdout !== undefined) return { stdout: err.stdout };
    throw err;
  });
  if (example.format === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      throw new Error(`example at line ${example.line} printed no JSON: ${stdout}`);
    }
    matchesDocumented(parsed, JSON.parse(example.expected));
  } else {
    expect(stdout.trim(), `example at line ${example.line}`).toBe(example.expected.trim());
  }
}
