import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Jaeger's query API as its UI calls it (`/api/services`, `/api/traces?service=…&tags=…`,
 * `/api/traces/<id>`), with the answers flattened for assertions.
 */

type KeyValue = { key: string; type: string; value: unknown };

interface ApiSpan {
  traceID: string;
  spanID: string;
  operationName: string;
  startTime: number;
  references: Array<{ refType: string; traceID: string; spanID: string }> | null;
  tags: KeyValue[] | null;
  logs: Array<{ timestamp: number; fields: KeyValue[] }> | null;
  processID: string;
}

interface ApiTrace {
  traceID: string;
  spans: ApiSpan[];
  processes: Record<string, { serviceName: string; tags: KeyValue[] | null }>;
}

/** A span as Jaeger shows it. */
export interface JaegerSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly name: string;
  /** Microseconds since the epoch. */
  readonly startTime: number;
  /** The process's `service.name`. */
  readonly service: string;
  /** `span.kind` as Jaeger shows it: server, client, producer, consumer, or null (internal). */
  readonly kind: string | null;
  /** The CHILD_OF reference: the parent span, or null for a root. */
  readonly parent: { traceId: string; spanId: string } | null;
  /** FOLLOWS_FROM references: OpenTelemetry span links. */
  readonly follows: ReadonlyArray<{ traceId: string; spanId: string }>;
  /** Span attributes, plus what Jaeger derives (`error`, `otel.status_code`, `span.kind`, …). */
  readonly tags: Readonly<Record<string, unknown>>;
  /** Span events (`exception` among them), each as its fields. */
  readonly logs: ReadonlyArray<Readonly<Record<string, unknown>>>;
}

export interface JaegerTrace {
  readonly traceId: string;
  readonly spans: readonly JaegerSpan[];
}

export interface TraceSearch {
  readonly service: string;
  readonly operation?: string;
  /** Tag search: every key must match a span attribute, a resource attribute or an event field. */
  readonly tags?: Readonly<Record<string, string>>;
  readonly limit?: number;
  /** Only traces with a span that started since; default the last hour. */
  readonly since?: Date;
}

/** Jaeger prints 128-bit ids without leading zeros; OTLP carries all 32 hex digits. */
function id(value: string, digits: number): string {
  return value.toLowerCase().padStart(digits, '0');
}

function fields(list: KeyValue[] | null): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((kv) => [kv.key, kv.value]));
}

function flatten(trace: ApiTrace): JaegerTrace {
  const spans = trace.spans.map((s): JaegerSpan => {
    const refs = (s.references ?? []).map((r) => ({
      type: r.refType,
      traceId: id(r.traceID, 32),
      spanId: id(r.spanID, 16),
    }));
    const parent = refs.find((r) => r.type === 'CHILD_OF');
    const tags = fields(s.tags);
    return {
      traceId: id(s.traceID, 32),
      spanId: id(s.spanID, 16),
      name: s.operationName,
      startTime: s.startTime,
      service: trace.processes[s.processID]?.serviceName ?? '',
      kind: typeof tags['span.kind'] === 'string' ? tags['span.kind'] : null,
      parent: parent ? { traceId: parent.traceId, spanId: parent.spanId } : null,
      follows: refs
        .filter((r) => r.type === 'FOLLOWS_FROM')
        .map((r) => ({ traceId: r.traceId, spanId: r.spanId })),
      tags,
      logs: (s.logs ?? []).map((l) => fields(l.fields)),
    };
  });
  return { traceId: id(trace.traceID, 32), spans };
}

export interface Jaeger {
  readonly url: string;
  /** Service names Jaeger has seen, as the UI's service drop-down lists them. */
  services(): Promise<string[]>;
  /** The UI's search: traces of the last hour with a span matching the query. */
  search(query: TraceSearch): Promise<JaegerTrace[]>;
  /** One trace by id, or null while Jaeger has none of its spans. */
  trace(traceId: string): Promise<JaegerTrace | null>;
}

async function get(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text for the error message.
  }
  return { status: res.status, body };
}

export function jaegerClient(url: string): Jaeger {
  return {
    url,
    async services() {
      const { status, body } = await get(`${url}/api/services`);
      if (status !== 200) throw new Error(`GET /api/services: ${status} ${JSON.stringify(body)}`);
      return ((body as { data: string[] | null }).data ?? []).slice().sort();
    },
    async search(query) {
      const since = query.since?.getTime() ?? Date.now() - 3_600_000;
      const params = new URLSearchParams({
        service: query.service,
        start: String(since * 1000),
        limit: String(query.limit ?? 20),
      });
      if (query.operation) params.set('operation', query.operation);
      if (query.tags) params.set('tags', JSON.stringify(query.tags));
      const { status, body } = await get(`${url}/api/traces?${params.toString()}`);
      if (status !== 200)
        throw new Error(`GET /api/traces?${params.toString()}: ${status} ${JSON.stringify(body)}`);
      return ((body as { data: ApiTrace[] | null }).data ?? []).map(flatten);
    },
    async trace(traceId) {
      const { status, body } = await get(`${url}/api/traces/${traceId}`);
      if (status === 404) return null;
      if (status !== 200) throw new Error(`GET /api/traces/${traceId}: ${status}`);
      const [trace] = (body as { data: ApiTrace[] | null }).data ?? [];
      return trace ? flatten(trace) : null;
    },
  };
}

/**
 * Polls `fn` until `check` holds: processes export on their own schedules and Jaeger answers
 * from what arrived so far. Fails after `timeoutMs` with the last answer, as `show` prints it.
 */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T>,
  check: (value: T) => boolean,
  options: { timeoutMs?: number; show?: (value: T) => string } = {},
): Promise<T> {
  const { timeoutMs = 60_000, show = (value: T) => JSON.stringify(value) } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (check(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what}: not seen in ${timeoutMs} ms; last answer: ${show(value)}`);
    await sleep(250);
  }
}

/** Polls one trace until `check` holds, e.g. until the spans a slower process exports arrive. */
export async function waitForTrace(
  jaeger: Jaeger,
  what: string,
  traceId: string,
  check: (trace: JaegerTrace) => boolean,
): Promise<JaegerTrace> {
  const found = await waitFor(
    what,
    () => jaeger.trace(traceId),
    (t) => t !== null && check(t),
    {
      show: outline,
    },
  );
  return found!;
}

/** A trace as the names of its spans and their services, for failure messages. */
export function outline(trace: JaegerTrace | null): string {
  return trace ? trace.spans.map((s) => `${s.service} ${s.name}`).join(', ') : 'no trace';
}

/** Traces found by a search, outlined. */
export function outlineAll(traces: readonly JaegerTrace[]): string {
  return traces.length === 0 ? 'none' : traces.map((t) => `[${outline(t)}]`).join(' ');
}

/** A SQL span as its verb and table (`insert user_events`), or the statement if it has none. */
function sqlLabel(statement: string): string {
  const table = /\b(?:from|into|update)\s+`(\w+)`/i.exec(statement)?.[1];
  return table ? `${statement.split(/\s/, 1)[0]!} ${table}` : statement;
}

/**
 * A trace as the text tree docs/observability.md shows: one span a line, children by start time,
 * with its service, its kind, and for a span linked to one in another trace (FOLLOWS_FROM), the
 * linked span's name when one of `linked` holds it. `replace` swaps run-specific text (the topic
 * prefix) for a placeholder.
 */
export function renderTree(
  trace: JaegerTrace,
  options: { linked?: readonly JaegerTrace[]; replace?: ReadonlyArray<[string, string]> } = {},
): string {
  const known = new Map(
    [trace, ...(options.linked ?? [])].flatMap((t) => t.spans.map((s) => [s.spanId, s] as const)),
  );
  const ids = new Set(trace.spans.map((s) => s.spanId));
  const byStart = (a: JaegerSpan, b: JaegerSpan) => a.startTime - b.startTime;
  const label = (s: JaegerSpan) => {
    let text =
      s.tags['db.system.name'] === 'mysql' ? sqlLabel(String(s.tags['db.query.text'])) : s.name;
    for (const [from, to] of options.replace ?? []) text = text.split(from).join(to);
    return text;
  };
  const lines: string[] = [];
  const visit = (span: JaegerSpan, depth: number) => {
    const follows = span.follows
      .map((f) => known.get(f.spanId))
      .filter((s) => s !== undefined)
      .map((s) => `  ⤷ ${label(s)}`)
      .join('');
    const name = `${'  '.repeat(depth)}${label(span)}`.padEnd(40);
    lines.push(`${name} ${span.service.padEnd(19)} ${span.kind ?? ''}${follows}`.trimEnd());
    for (const child of trace.spans.filter((s) => s.parent?.spanId === span.spanId).sort(byStart))
      visit(child, depth + 1);
  };
  for (const root of trace.spans
    .filter((s) => !s.parent || !ids.has(s.parent.spanId))
    .sort(byStart))
    visit(root, 0);
  return lines.join('\n');
}
