import path from 'node:path';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { ERROR_CODES } from '../../src/errors.js';
import { checkExample, docExamples } from '../helpers/doc-examples.js';
import { readDoc, tableRows } from '../helpers/markdown.js';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';

const doc = path.resolve(import.meta.dirname, '../../docs/api.md');

describe('docs/api.md errors', () => {
  it('should list every catalogue code with its HTTP and gRPC status', () => {
    const rows = tableRows(readDoc('api.md'), 'code');
    const documented = rows.map(([code, http, grpc]) => [code!.replace(/`/g, ''), http, grpc]);
    const catalogue = Object.entries(ERROR_CODES).map(([code, spec]) => [
      code,
      String(spec.http),
      GrpcStatus[spec.grpc],
    ]);
    expect(documented.sort()).toEqual(catalogue.sort());
  });
});

describe('docs/api.md examples', () => {
  let stack: Stack;
  let env: Record<string, string>;

  beforeAll(async () => {
    stack = await startStack('embedded', { partitions: 4 }, ['api', 'projector']);
    env = {
      MINIPUSH: stack.url,
      API_KEY,
      TOKEN: await signUserToken(42),
      GRPC: `127.0.0.1:${stack.runtime.grpcPort}`,
      PATH: `${path.dirname(inject('grpcurl'))}:${process.env.PATH ?? ''}`,
    };
  });

  afterAll(async () => {
    await stack?.close();
  });

  // In document order: later examples read what earlier ones wrote.
  it('should print what the document shows, for every example in order', async () => {
    const examples = docExamples(doc);
    if (examples.length < 19)
      throw new Error(`expected the API examples, found ${examples.length}`);
    for (const example of examples) await checkExample(example, env);
  });
});
