import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);

describe('package entry points (built)', () => {
  it('should resolve every export the package declares, from plain Node', async () => {
    const script = `
      const main = await import('minipush');
      const producer = await import('minipush/producer');
      const client = await import('minipush/client');
      console.log(JSON.stringify({
        main: typeof main.startRuntime === 'function' && typeof main.createCommandProducer === 'function',
        producer: typeof producer.createCommandProducer === 'function',
        client: typeof client.MiniPushClient === 'function',
      }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: process.cwd(),
    });
    expect(JSON.parse(stdout)).toEqual({ main: true, producer: true, client: true });
  });
});
