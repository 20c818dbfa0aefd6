import { Writable } from 'node:stream';
import { context, trace } from '@opentelemetry/api';
import { node } from '@opentelemetry/sdk-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean))
        lines.push(JSON.parse(line));
      done();
    },
  });
  return { lines, stream };
}

describe('createLogger', () => {
  const provider = new node.NodeTracerProvider();

  beforeAll(() => provider.register());
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    context.disable();
  });

  it('should put the active span’s trace_id and span_id on each line inside it', async () => {
    const { lines, stream } = capture();
    const logger = createLogger('info', {}, stream);
    const span = trace.getTracer('test').startSpan('work');
    await context.with(trace.setSpan(context.active(), span), async () => {
      await Promise.resolve();
      logger.child({ component: 'projector' }).info('inside');
    });
    span.end();
    logger.info('outside');
    expect(lines[0]).toMatchObject({
      msg: 'inside',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
    });
    expect(lines[1]!.msg).toBe('outside');
    expect(lines[1]).not.toHaveProperty('trace_id');
    expect(lines[1]).not.toHaveProperty('span_id');
  });
});
