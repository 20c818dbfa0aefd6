import {
  SpanKind,
  SpanStatusCode,
  context,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import type { CommandRecord } from '../commands/command-record.js';
import type { HeadChange } from '../domain/head-state.js';
import type { DeadLetter, LogBatch, LogPosition, LogRecord } from '../log/log.js';
import { packageVersion } from '../version.js';
import { contextFromHeaders, traceHeaders } from './trace-context.js';

/**
 * Span names, one per hop the project owns. A published event's trace reads, parent to child:
 * `minipush.publish` → (kafkajs `send`) → `minipush.project` → `minipush.notify` →
 * `minipush.nudge`.
 */
export const SPAN = {
  /** A publish command appended to the write log (API side). */
  publish: 'minipush.publish',
  /** A read mark (seqs or up to a seq) appended to the write log. */
  markRead: 'minipush.mark_read',
  markUnread: 'minipush.mark_unread',
  markSeen: 'minipush.mark_seen',
  archive: 'minipush.archive',
  unarchive: 'minipush.unarchive',
  /** Expired events removed from a user's feed (written by the TTL cleaner). */
  expire: 'minipush.expire',
  /** One projector batch: its database transaction and notifications. Links to its records. */
  projectBatch: 'minipush.project.batch',
  /** One record projected, child of the span that wrote it. */
  project: 'minipush.project',
  /** One user's head change sent to the hubs, child of the projection that caused it. */
  notify: 'minipush.notify',
  /** A hub nudging a user's live sessions, child of the notification. */
  nudge: 'minipush.nudge',
} as const;

/** Attribute names of MiniPush's own spans (the messaging.* ones are OpenTelemetry's). */
export const ATTR = {
  commandType: 'minipush.command.type',
  eventId: 'minipush.event.id',
  uidCount: 'minipush.uid_count',
  uid: 'minipush.uid',
  batchSize: 'minipush.batch.size',
  firstOffset: 'minipush.offset.first',
  lastOffset: 'minipush.offset.last',
  positions: 'minipush.positions',
  headSeq: 'minipush.head_seq',
  sessions: 'minipush.sessions',
  coalesced: 'minipush.nudge.coalesced',
  deadLetterReason: 'minipush.dlq.reason',
  deadLetterField: 'minipush.dlq.field',
  errorType: 'error.type',
  messagingSystem: 'messaging.system',
  destination: 'messaging.destination.name',
  partition: 'messaging.destination.partition.id',
  offset: 'messaging.kafka.offset',
  messageCount: 'messaging.batch.message_count',
  operation: 'messaging.operation.type',
} as const;

/** Span links kept per batch span; a larger batch links its first records only. */
const MAX_LINKS = 128;

function tracer(): Tracer {
  return trace.getTracer('minipush', packageVersion());
}

function fail(span: Span, err: unknown): void {
  span.recordException(err instanceof Error ? err : String(err));
  span.setStatus({
    code: SpanStatusCode.ERROR,
    message: err instanceof Error ? err.message : String(err),
  });
}

function commandSpanName(command: CommandRecord): string {
  switch (command.type) {
    case 'publish':
      return SPAN.publish;
    case 'markRead':
    case 'markReadUpTo':
      return SPAN.markRead;
    case 'markUnread':
      return SPAN.markUnread;
    case 'markSeen':
    case 'markSeenUpTo':
      return SPAN.markSeen;
    case 'archive':
    case 'archiveUpTo':
      return SPAN.archive;
    case 'unarchive':
    case 'unarchiveUpTo':
      return SPAN.unarchive;
    case 'expire':
      return SPAN.expire;
    default: {
      const unreachable: never = command;
      throw new Error(`unknown command ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * The command writer's `around` hook: runs `write` (the append of one command) in a producer
 * span, child of the active context (the REST or gRPC request), and hands it the span's W3C
 * context to put in the records' headers, so the projection continues this trace. Records the
 * command type, uid count and log positions; never the body.
 */
export async function traceAppend(
  command: CommandRecord,
  topic: string,
  write: (headers: Record<string, string> | undefined) => Promise<LogPosition[]>,
): Promise<LogPosition[]> {
  const attributes: Attributes = {
    [ATTR.commandType]: command.type,
    [ATTR.uidCount]: command.type === 'publish' ? command.to.length : 1,
    [ATTR.destination]: topic,
    [ATTR.operation]: 'send',
    ...(command.type === 'publish' ? { [ATTR.eventId]: command.id } : {}),
  };
  return tracer().startActiveSpan(
    commandSpanName(command),
    { kind: SpanKind.PRODUCER, attributes },
    async (span) => {
      try {
        const positions = await write(traceHeaders());
        span.setAttribute(ATTR.messageCount, positions.length);
        span.setAttribute(
          ATTR.positions,
          positions.map((p) => `${p.partition}:${p.offset}`),
        );
        if (positions.length === 1) {
          span.setAttribute(ATTR.partition, String(positions[0]!.partition));
          span.setAttribute(ATTR.offset, positions[0]!.offset);
        }
        return positions;
      } catch (err) {
        fail(span, err);
        throw err;
      } finally {
        span.end();
      }
    },
  );
}

/** Command type and number of recipients of a record, read only for a recorded span. */
function describeRecord(record: LogRecord): Attributes {
  if (!record.value) return {};
  try {
    const parsed = JSON.parse(record.value.toString('utf8')) as { type?: unknown; to?: unknown };
    return {
      ...(typeof parsed.type === 'string' ? { [ATTR.commandType]: parsed.type } : {}),
      [ATTR.uidCount]: Array.isArray(parsed.to) ? parsed.to.length : 1,
    };
  } catch {
    return {};
  }
}

/** The projector's batch hooks, as {@link batchTracing} makes them. */
export interface BatchTracing {
  readonly aroundBatch: (batch: LogBatch, run: (batch: LogBatch) => Promise<void>) => Promise<void>;
  readonly onDeadLetters: (letters: readonly DeadLetter[]) => void;
}

/**
 * The projector's batch hooks. `aroundBatch`: each batch runs in a `minipush.project.batch` span
 * (its SQL is traced beneath it; it links to the records' traces) and each record gets a
 * `minipush.project` span whose parent is the context in its headers (the publish), or the
 * batch span for a record that came with none. The projector then sees each record with that
 * span's context in its `traceparent` header, so the head change it produces — and the hub's
 * nudge — continue the record's trace. `onDeadLetters`: a dead-lettered record's
 * `minipush.project` span ends as an error with the dead letter's reason and field.
 */
export function batchTracing(system: 'kafka' | 'minipush.embedded', topic: string): BatchTracing {
  /** The `minipush.project` span of each record handed to the projector, until it ends. */
  const recordSpans = new WeakMap<LogRecord, Span>();
  const onDeadLetters = (letters: readonly DeadLetter[]): void => {
    for (const { record, reason, field } of letters) {
      const span = recordSpans.get(record);
      if (!span) continue;
      span.setStatus({ code: SpanStatusCode.ERROR, message: reason });
      span.setAttributes({
        [ATTR.errorType]: 'dead_letter',
        [ATTR.deadLetterReason]: reason,
        ...(field ? { [ATTR.deadLetterField]: field } : {}),
      });
    }
  };
  const aroundBatch: BatchTracing['aroundBatch'] = async ({ partition, records }, run) => {
    const common: Attributes = {
      [ATTR.messagingSystem]: system,
      [ATTR.destination]: topic,
      [ATTR.partition]: String(partition),
      [ATTR.operation]: 'process',
      [ATTR.batchSize]: records.length,
    };
    const parents = records.map((record) => contextFromHeaders(record.headers));
    const links: Link[] = [];
    for (const parent of parents) {
      const spanContext = parent && trace.getSpanContext(parent);
      if (spanContext && links.length < MAX_LINKS) links.push({ context: spanContext });
    }
    const t = tracer();
    const batchSpan = t.startSpan(SPAN.projectBatch, {
      kind: SpanKind.CONSUMER,
      links,
      attributes: {
        ...common,
        [ATTR.messageCount]: records.length,
        [ATTR.firstOffset]: records[0]?.offset ?? -1,
        [ATTR.lastOffset]: records[records.length - 1]?.offset ?? -1,
      },
    });
    const batchContext = trace.setSpan(context.active(), batchSpan);
    const spans: Span[] = [];
    const traced = records.map((record, i) => {
      const parent: Context = parents[i] ?? batchContext;
      const span = t.startSpan(
        SPAN.project,
        {
          kind: SpanKind.CONSUMER,
          links: parents[i] ? [{ context: batchSpan.spanContext() }] : [],
          attributes: { ...common, [ATTR.offset]: record.offset },
        },
        parent,
      );
      if (span.isRecording()) span.setAttributes(describeRecord(record));
      spans.push(span);
      const headers = traceHeaders(trace.setSpan(parent, span));
      const tracedRecord = headers
        ? { ...record, headers: { ...record.headers, ...headers } }
        : record;
      recordSpans.set(tracedRecord, span);
      return tracedRecord;
    });
    try {
      await context.with(batchContext, () => run({ partition, records: traced }));
    } catch (err) {
      for (const span of [...spans, batchSpan]) fail(span, err);
      throw err;
    } finally {
      for (const span of spans) span.end();
      batchSpan.end();
    }
  };
  return { aroundBatch, onDeadLetters };
}

/**
 * The transports' `onClientError` hook: the request's span says the catalogue code the client
 * got (a schema error is otherwise recorded as Fastify's own code).
 */
export function recordClientError(code: string): void {
  trace.getActiveSpan()?.setAttribute(ATTR.errorType, code);
}

/**
 * The projector's `aroundNotify` hook: each head change is sent in a `minipush.notify` span,
 * child of the context it carries (the record's `minipush.project` span), and goes out
 * carrying the notify span's context for the hubs' `minipush.nudge`.
 */
export function traceNotifications(
  destination: string,
): (
  changes: readonly HeadChange[],
  publish: (changes: readonly HeadChange[]) => Promise<void>,
) => Promise<void> {
  return async (changes, publish) => {
    if (changes.length === 0) return;
    const t = tracer();
    const spans: Span[] = [];
    const traced = changes.map((change) => {
      const parent =
        (change.traceparent ? contextFromHeaders({ traceparent: change.traceparent }) : null) ??
        context.active();
      const span = t.startSpan(
        SPAN.notify,
        {
          kind: SpanKind.PRODUCER,
          attributes: {
            [ATTR.destination]: destination,
            [ATTR.operation]: 'send',
            [ATTR.uid]: change.uid,
            [ATTR.uidCount]: 1,
            [ATTR.headSeq]: change.headSeq,
          },
        },
        parent,
      );
      spans.push(span);
      const traceparent = traceHeaders(trace.setSpan(parent, span))?.traceparent;
      return traceparent ? { ...change, traceparent } : change;
    });
    try {
      await publish(traced);
    } catch (err) {
      for (const span of spans) fail(span, err);
      throw err;
    } finally {
      for (const span of spans) span.end();
    }
  };
}

/**
 * The hub's `aroundNudge` hook: runs its handling of one head change for a user with live
 * sessions on this hub in a `minipush.nudge` span, child of the notification's context. `nudge` returns true when the
 * sessions were told at once, false when the change was merged into the next window's nudge.
 * A change that carries no trace context is handled untraced.
 */
export function traceNudge(change: HeadChange, sessions: number, nudge: () => boolean): void {
  const parent = change.traceparent
    ? contextFromHeaders({ traceparent: change.traceparent })
    : null;
  if (!parent) {
    nudge();
    return;
  }
  const span = tracer().startSpan(
    SPAN.nudge,
    {
      kind: SpanKind.CONSUMER,
      attributes: {
        [ATTR.operation]: 'process',
        [ATTR.uid]: change.uid,
        [ATTR.headSeq]: change.headSeq,
        [ATTR.sessions]: sessions,
      },
    },
    parent,
  );
  try {
    const sent = context.with(trace.setSpan(parent, span), nudge);
    span.setAttribute(ATTR.coalesced, !sent);
  } catch (err) {
    fail(span, err);
    throw err;
  } finally {
    span.end();
  }
}
