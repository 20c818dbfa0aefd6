import { SignJWT } from 'jose';
import type { Config, Role } from '../../src/config.js';
import type { Runtime } from '../../src/runtime.js';
import { startPipeline } from './pipeline.js';
import { backendConfig, type Backend } from './services.js';

export const API_KEY = 'test-api-key-0123456789';
export const JWT_SECRET = 'test-jwt-secret-0123456789-0123456789';

export interface Stack {
  readonly runtime: Runtime;
  readonly config: Config;
  readonly url: string;
  /** Authorization header value for a user. */
  userAuth(
    uid: number,
    options?: { expiresIn?: string | number; secret?: string },
  ): Promise<string>;
  readonly serviceAuth: string;
  /** Calls the REST API; returns status and parsed JSON body. */
  call(
    method: string,
    path: string,
    options?: { auth?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; body: any }>;
  close(): Promise<void>;
}

export async function signUserToken(
  uid: number | string,
  options: { expiresIn?: string | number; secret?: string } = {},
) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(uid))
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? '1h')
    .sign(new TextEncoder().encode(options.secret ?? JWT_SECRET));
}

/** A running MiniPush (REST, gRPC, projector, and whatever roles asked) on a fresh backend. */
export async function startStack(
  backend: Backend,
  overrides: Partial<Config> = {},
  roles: Role[] = ['api', 'projector'],
): Promise<Stack> {
  const made = await backendConfig(backend, {
    roles,
    apiKeys: [API_KEY],
    jwtSecret: JWT_SECRET,
    ...overrides,
  });
  const runtime = await startPipeline(made.config);
  const url = runtime.httpUrl;
  return {
    runtime,
    config: made.config,
    url,
    userAuth: async (uid, options) => `Bearer ${await signUserToken(uid, options)}`,
    serviceAuth: `Bearer ${API_KEY}`,
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      const auth = options.auth === undefined ? `Bearer ${API_KEY}` : options.auth;
      if (auth !== null) headers.authorization = auth;
      let body: string | undefined;
      if (options.body !== undefined) {
        headers['content-type'] ??= 'application/json';
        body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      }
      const response = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON; return the text.
      }
      return { status: response.status, body: parsed };
    },
    async close() {
      await runtime.close();
      await made.cleanup();
    },
  };
}
