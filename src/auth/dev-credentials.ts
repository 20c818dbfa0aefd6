import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
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
