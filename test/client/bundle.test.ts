import path from 'node:path';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('minipush/client', () => {
  it('should bundle for browsers with no Node built-ins', async () => {
    // esbuild fails a browser build that imports a Node built-in; external keeps none in.
    const result = await build({
      entryPoints: [path.resolve(import.meta.dirname, '../../src/client/index.ts')],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
      metafile: true,
    });
    // The client's own code and the wire protocol it shares with the hub (types and constants).
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((file) => !file.startsWith('src/client/'))).toEqual([
      'src/protocol/websocket.ts',
    ]);
    expect(result.outputFiles[0]!.text).not.toMatch(/\bfrom ["']node:|require\(/);
  });
});
