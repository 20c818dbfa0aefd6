import { ROOT_CONTEXT, context, propagation, trace, type Context } from '@opentelemetry/api';

/** W3C trace context of the current span, to carry into log record headers. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}

/** The remote span context carried in record headers (or a HeadChange), if any. */
export function contextFromHeaders(headers: Readonly<Record<string, string>>): Context | null {
  const ctx = propagation.extract(ROOT_CONTEXT, headers);
  return trace.getSpanContext(ctx) ? ctx : null;
}
