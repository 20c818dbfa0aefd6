import fs from 'node:fs';
import path from 'node:path';
import { devCredentialsRefusal, type DevCredentials } from '../auth/dev-credentials.js';
import type { Config } from '../config.js';
import { NotFoundError, UnavailableError } from '../errors.js';
import type { HttpApp } from '../transports/http/app.js';

/** The bundle `npm run build` writes to dist/demo, by file name. */
const ASSETS: Readonly<Record<string, string>> = {
  'index.html': 'text/html; charset=utf-8',
  'main.js': 'text/javascript; charset=utf-8',
  'main.js.map': 'application/json; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'style.css.map': 'application/json; charset=utf-8',
};

// Same-origin only: the page talks to this server's REST API and WebSocket and nothing else.
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'";

export interface DemoOptions {
  /** Folder with the built page, or null when it was not built. */
  readonly assetsDir: string | null;
  /** API key the page may fill into its publish form; null keeps it out of reach. */
  readonly devApiKey: string | null;
}

/** dist/demo, seen from dist/src/demo (built) or from src/demo (tests run the sources). */
export function findDemoAssets(): string | null {
  const candidates = [
    path.resolve(import.meta.dirname, '../../demo'),
    path.resolve(import.meta.dirname, '../../dist/demo'),
  ];
  return candidates.find((dir) => fs.existsSync(path.join(dir, 'index.html'))) ?? null;
}

/** Serves the demo inbox page at `/demo` from memory (four small files need no static server). */
export async function demoRoutes(app: HttpApp, options: DemoOptions): Promise<void> {
  const files = new Map<string, Buffer>();
  if (options.assetsDir !== null) {
    for (const name of Object.keys(ASSETS)) {
      const file = path.join(options.assetsDir, name);
      if (fs.existsSync(file)) files.set(name, fs.readFileSync(file));
    }
  }
  const notBuilt = new UnavailableError('the demo page is not built: run npm run build');

  await app.register(async (demo) => {
    const send = (name: string) => {
      const body = files.get(name);
      return { body, type: ASSETS[name] };
    };
    demo.get('/demo', { schema: { hide: true } }, async (_request, reply) => {
      const { body, type } = send('index.html');
      if (!body || !type) return reply.code(notBuilt.httpStatus).send(notBuilt.toJSON());
      return reply
        .header('content-type', type)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CSP)
        .header('x-content-type-options', 'nosniff')
        .send(body);
    });
    demo.get<{ Params: { file: string } }>(
      '/demo/:file',
      { schema: { hide: true } },
      async (request, reply) => {
        const { body, type } = send(request.params.file);
        if (!body || !type) {
          const missing = new NotFoundError(`no demo file ${request.params.file}`);
          return reply.code(missing.httpStatus).send(missing.toJSON());
        }
        return reply
          .header('content-type', type)
          .header('cache-control', 'no-cache')
          .header('x-content-type-options', 'nosniff')
          .send(body);
      },
    );
    if (options.devApiKey !== null) {
      const apiKey = options.devApiKey;
      // Development only, like /v1/dev/token: anyone who can open the page may publish with it.
      demo.get('/demo/dev-api-key', { schema: { hide: true } }, async (request, reply) => {
        const refusal = devCredentialsRefusal(request.headers);
        if (refusal) return reply.code(refusal.httpStatus).send(refusal.toJSON());
        return reply.header('cache-control', 'no-store').send({ apiKey });
      });
    }
  });
}

/**
 * The demo page when enabled. Its publish form gets the API key only on the embedded default
 * with dev tokens on and no configured API keys, i.e. the key MiniPush generated for local use;
 * anywhere else the person using the page pastes a key.
 */
export function demoPlugins(
  config: Config,
  dev: DevCredentials | null,
): Array<(app: HttpApp) => Promise<void>> {
  if (!config.demoEnabled) return [];
  const devApiKey =
    dev !== null && config.devTokens && config.apiKeys.length === 0 ? dev.apiKey : null;
  return [(app) => demoRoutes(app, { assetsDir: findDemoAssets(), devApiKey })];
}
