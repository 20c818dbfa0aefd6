#!/usr/bin/env node
/**
 * The `minipush` command. Tracing, when the OTEL_* environment asks for it, must start before
 * the app's modules load so that their instrumentations see them, hence this small launcher
 * that imports the CLI only afterwards.
 */
import { startTelemetry } from './telemetry/setup.js';

await startTelemetry();
await import('./cli.js');
