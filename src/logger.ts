import { isSpanContextValid, trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger } from 'pino';

/** `trace_id` and `span_id` of the active span, so log lines join their trace. */
function traceFields(): Record<string, string> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (!spanContext || !isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/**
 * Structured JSON logs on stdout; the caller's bindings (role, hub id) go on every line, and
 * every line written inside a traced request or batch carries its `trace_id` and `span_id`.
 */
export function createLogger(
  level: LogLevel,
  bindings: Record<string, unknown> = {},
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service: 'minipush', pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
    redact: { paths: ['req.headers.authorization', 'token', '*.token'], censor: '***' },
  };
  return destination ? pino(options, destination) : pino(options);
}
