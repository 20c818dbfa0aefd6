import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { ForbiddenError } from '../errors.js';
import type { AuthSettings } from './authenticator.js';

export interface DevCredentials {
  readonly apiKey: string;
  readonly jwtSecret: string;
}

const FILE = 'dev-credentials.json';

/**
 * Credentials for the zero-setup embedded default, made once and kept in the data folder so
 * tokens and the printed API key survive restarts. Only used when none are configured.
 */
export function loadDevCredentials(dataDir: string): DevCredentials {
  const file = path.join(dataDir, FILE);
  try {
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<DevCredentials>;
    if (typeof stored.apiKey === 'string' && typeof stored.jwtSecret === 'string') {
      return { apiKey: stored.apiKey, jwtSecret: stored.jwtSecret };
    }
  } catch {
    // First run: create them below.
  }
  const created = {
    apiKey: `mp_dev_${randomBytes(18).toString('base64url')}`,
    jwtSecret: randomBytes(32).toString('base64url'),
  };
  fs.mkdirSync(dataDir, { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(created, null, 2)}\n`, { mode: 0o600 });
  return created;
}

/** Adds the dev credentials where the configuration leaves a gap. */
export function withDevCredentials(settings: AuthSettings, dev: DevCredentials): AuthSettings {
  const noJwtKey =
    settings.jwtSecret === '' && settings.jwtPublicKey === '' && settings.jwtJwksUrl === '';
  return {
    ...settings,
    apiKeys: settings.apiKeys.length === 0 ? [dev.apiKey] : settings.apiKeys,
    jwtSecret: noJwtKey ? dev.jwtSecret : settings.jwtSecret,
  };
}

/** A user token signed with an HS256 secret (dev mint and tests). */
export async function mintUserToken(
  secret: string,
  uid: number,
  ttlSeconds = 3600,
): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(uid))
    .setIssuedAt()
    .setExpirationTime(`${ttlSeconds}s`)
    .sign(new TextEncoder().encode(secret));
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

function hostnameOf(value: string): string | null {
  try {
    return new URL(value.includes('://') ? value : `http://${value}`).hostname.toLowerCase();
  } catch {
    return null;
  }
}

function isLoopback(hostname: string | null): boolean {
  return (
    hostname !== null &&
    (LOOPBACK_HOSTS.has(hostname) ||
      /^127\.\d+\.\d+\.\d+$/.test(hostname) ||
      hostname.endsWith('.localhost'))
  );
}

/**
 * Why a request may not have dev credentials, or null when it may. They go only to pages on a
 * loopback host: a page on another name that resolves to 127.0.0.1 (DNS rebinding) sends its
 * own name in `Host` and `Origin`, and must not read the API key or mint tokens.
 */
export function devCredentialsRefusal(headers: {
  readonly host?: string | undefined;
  readonly origin?: string | undefined;
}): ForbiddenError | null {
  const host = headers.host ?? '';
  if (!isLoopback(hostnameOf(host))) {
    return new ForbiddenError(
      `dev credentials are served to loopback hosts only, not Host ${host || '(none)'}: ` +
        'open the page at http://127.0.0.1:<port> or http://localhost:<port>',
    );
  }
  if (headers.origin !== undefined && !isLoopback(hostnameOf(headers.origin))) {
    return new ForbiddenError(
      `dev credentials are served to loopback pages only, not Origin ${headers.origin}`,
    );
  }
  return null;
}
