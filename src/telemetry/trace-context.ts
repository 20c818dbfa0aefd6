import { context, propagation } from '@opentelemetry/api';

/** W3C trace context of the current span, to carry into log record headers. */
export function traceHeaders(): Record<string, string> | undefined {
  const carrier: Record<string, string> = {};
  propagation.inject(context.active(), carrier);
  return Object.keys(carrier).length > 0 ? carrier : undefined;
}
