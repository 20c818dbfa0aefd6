/**
 * For `node --import minipush/telemetry/register <entry>`: starts tracing from the
 * OTEL_* environment before the entry loads. The `minipush` command does this by itself.
 */
import { startTelemetry } from './setup.js';

await startTelemetry();
