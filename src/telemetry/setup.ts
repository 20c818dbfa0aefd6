import { trace } from '@opentelemetry/api';

/**
 * Whether the standard OTEL_* settings ask for traces to be exported: an OTLP endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT), or OTEL_TRACES_EXPORTER
 * names another exporter (console, zipkin). OTEL_SDK_DISABLED=true and
 * OTEL_TRACES_EXPORTER=none turn tracing off whatever else is set.
 */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true') return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== '');
  if (exporters.includes('none')) return false;
  if (exporters.some((name) => name !== 'otlp')) return true;
  return (
    (env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '').trim() !== '' ||
    (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? '').trim() !== ''
  );
}

let started: Promise<boolean> | null = null;

/**
 * Starts the OpenTelemetry SDK when {@link tracingRequested}, before the app is imported: the
 * ESM loader hook must be in place when http, fastify, @grpc/grpc-js, mysql2 and kafkajs load
 * for their instrumentations to patch them. Loads nothing of the SDK otherwise. Resolves true
 * when tracing runs. A failure to start is reported on stderr and the service runs untraced.
 */
export function startTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  started ??= (async () => {
    if (!tracingRequested(env)) return false;
    try {
      const { register } = await import('node:module');
      const { createAddHookMessageChannel } = await import('import-in-the-middle');
      // Only the modules an instrumentation asks for are wrapped, not every import.
      const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
      register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);
      const { createSdk } = await import('./sdk.js');
      createSdk(env).start();
      await waitForAllMessagesAcknowledged();
      return true;
    } catch (err) {
      process.stderr.write(
        `minipush: OpenTelemetry did not start; running without tracing: ${err instanceof Error ? err.message : String(err)}\n`,
      );
      return false;
    }
  })();
  return started;
}

interface Flushable {
  forceFlush(): Promise<void>;
}

function isFlushable(value: unknown): value is Flushable {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { forceFlush?: unknown }).forceFlush === 'function'
  );
}

/** Exports the spans still buffered (a no-op when tracing is off); call before exiting. */
export async function flushTraces(): Promise<void> {
  const provider: unknown = trace.getTracerProvider();
  const delegate =
    typeof (provider as { getDelegate?: unknown }).getDelegate === 'function'
      ? (provider as { getDelegate(): unknown }).getDelegate()
      : provider;
  if (isFlushable(delegate)) await delegate.forceFlush().catch(() => undefined);
}
