import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { API_KEY, signUserToken, startStack, type Stack } from '../helpers/stack.js';

const run = promisify(execFile);

/**
 * Schemathesis (from PyPI, installed by the harness) generates requests from the OpenAPI
 * document, valid and invalid, and checks every answer: no 5xx, only documented status codes and
 * content types, bodies that match their schemas, and schema-invalid requests refused with 4xx.
 */
describe('REST API fuzzed from its OpenAPI document (schemathesis)', () => {
  let stack: Stack;
  // Schemathesis and Hypothesis keep caches in their working folder: keep them out of the clone.
  let workDir: string;

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'minipush-fuzz-'));
    stack = await startStack('embedded', { maxLimit: 200 }, ['api', 'hub', 'projector']);
  });

  afterAll(async () => {
    await stack?.close();
    await rm(workDir, { recursive: true, force: true });
  });

  const CHECKS = [
    'not_a_server_error',
    'status_code_conformance',
    'content_type_conformance',
    'response_schema_conformance',
    'negative_data_rejection',
    'unsupported_method',
  ].join(',');

  it.each([
    ['an API key', async () => API_KEY],
    ['a user token', async () => signUserToken(0)],
  ])(
    'should find no 5xx and no answer off its schema with %s',
    async (_name, token) => {
      const st = inject('schemathesis');
      const result = await run(
        st,
        [
          'run',
          `${stack.url}/v1/openapi.json`,
          '--header',
          `Authorization: Bearer ${await token()}`,
          '--checks',
          CHECKS,
          '--max-examples',
          '25',
          '--max-time',
          '30',
          // One worker: Hypothesis parses lambdas while describing strategies, and CPython 3.11's
          // ast.parse raised a spurious SystemError in concurrent workers (CPython gh-106905).
          '--workers',
          '1',
          '--seed',
          '20261125',
          '--no-color',
        ],
        {
          cwd: workDir,
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, SCHEMATHESIS_HOOKS: '' },
        },
      ).then(
        ({ stdout }) => ({ code: 0, stdout }),
        (err: { code: number; stdout: string }) => ({ code: err.code, stdout: err.stdout }),
      );
      const summary = result.stdout.split('SUMMARY').at(-1) ?? result.stdout;
      expect(result.code, result.stdout.slice(-6000)).toBe(0);
      expect(summary).toMatch(/Tested: 1\d/);
    },
    120_000,
  );
});
