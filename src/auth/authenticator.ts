import { createHash, createPublicKey, timingSafeEqual } from 'node:crypto';
import {
  createRemoteJWKSet,
  errors as joseErrors,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
} from 'jose';
import type { Config } from '../config.js';
import { parseUid } from '../domain/uid.js';
import {
  ForbiddenError,
  MiniPushError,
  TokenExpiredError,
  UnauthenticatedError,
} from '../errors.js';

/** Who is calling: a business server (API key) or one user (JWT with `sub` = uid). */
export type Principal =
  | { readonly kind: 'service' }
  | {
      readonly kind: 'user';
      readonly uid: number;
      /** When the user's token stops being valid, in ms since the epoch (its `exp`). */
      readonly expiresAt?: number;
    };

/** The settings authentication works with; each is documented on {@link Config}. At most one
 * of the secret, the public key and the JWKS URL is set. */
export type AuthSettings = Pick<
  Config,
  'apiKeys' | 'jwtSecret' | 'jwtPublicKey' | 'jwtJwksUrl' | 'jwtIssuer' | 'jwtAudience'
>;

const ASYMMETRIC = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
];

/** Verified user tokens kept, and for how long at most (ms). */
const VERIFIED_CACHE_SIZE = 100_000;
const VERIFIED_TTL_MS = 60_000;

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

function unauthenticated(message: string): UnauthenticatedError {
  return new UnauthenticatedError(message);
}

/**
 * Checks bearer tokens. API keys are compared in constant time (on their digests, so the length
 * leaks nothing); user JWTs must verify with the configured key, carry a numeric `sub`, and not
 * be expired. `alg: none` and algorithms other than the configured key's never verify.
 */
export class Authenticator {
  private readonly keyDigests: Buffer[];
  /**
   * User tokens already verified, by their exact text (signature included, so nothing can be
   * forged into a hit), until they expire or a minute passes. Clients send the same token with
   * every request; verifying its signature each time cost more than the query it guards.
   */
  private readonly verified = new Map<
    string,
    { readonly uid: number; readonly expiresAt: number; readonly until: number }
  >();
  private key: Uint8Array | CryptoKey | JWTVerifyGetKey | null = null;
  private verifyOptions: JWTVerifyOptions;
  private readonly ready: Promise<void>;

  constructor(settings: AuthSettings) {
    this.keyDigests = settings.apiKeys.map(digest);
    const algorithms = settings.jwtSecret !== '' ? ['HS256'] : ASYMMETRIC;
    this.verifyOptions = {
      algorithms,
      requiredClaims: ['sub', 'exp'],
      ...(settings.jwtIssuer !== '' ? { issuer: settings.jwtIssuer } : {}),
      ...(settings.jwtAudience !== '' ? { audience: settings.jwtAudience } : {}),
    };
    this.ready = this.loadKey(settings);
    this.ready.catch(() => undefined);
  }

  private async loadKey(settings: AuthSettings): Promise<void> {
    if (settings.jwtSecret !== '') {
      // Imported once: given the raw bytes, jose imports a key for every token it verifies.
      this.key = await crypto.subtle.importKey(
        'raw',
        new TextEncoder().encode(settings.jwtSecret),
        { name: 'HMAC', hash: 'SHA-256' },
        false,
        ['verify'],
      );
    } else if (settings.jwtPublicKey !== '') {
      const pem = settings.jwtPublicKey.replace(/\\n/g, '\n');
      const alg = await detectAlgorithm(pem);
      this.key = await importSPKI(pem, alg);
      this.verifyOptions = { ...this.verifyOptions, algorithms: [alg] };
    } else if (settings.jwtJwksUrl !== '') {
      this.key = createRemoteJWKSet(new URL(settings.jwtJwksUrl));
    }
  }

  /** Resolves once the JWT key is loaded; rejects when it cannot be (bad PEM). */
  whenReady(): Promise<void> {
    return this.ready;
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (authorization === undefined || authorization === '') {
      throw unauthenticated(
        'missing credentials: send "Authorization: Bearer <API key or user JWT>"',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) {
      throw unauthenticated('malformed Authorization header: expected "Bearer <token>"');
    }
    return this.authenticateToken(match[1]!);
  }

  /**
   * `remember: false` for a token used once, such as a WebSocket's: keeping it would only cost
   * memory for every open session.
   */
  async authenticateToken(token: string, options: { remember?: boolean } = {}): Promise<Principal> {
    if (this.isApiKey(token)) return { kind: 'service' };
    if (token.split('.').length !== 3) {
      throw unauthenticated('invalid credentials: not a known API key or a JWT');
    }
    const cached = this.verified.get(token);
    if (cached) {
      if (Date.now() < cached.until)
        return { kind: 'user', uid: cached.uid, expiresAt: cached.expiresAt };
      this.verified.delete(token);
    }
    await this.ready;
    const key = this.key;
    if (key === null) {
      throw unauthenticated('user tokens are not accepted: no JWT key is configured');
    }
    try {
      const { payload } =
        typeof key === 'function'
          ? await jwtVerify(token, key, this.verifyOptions)
          : await jwtVerify(token, key, this.verifyOptions);
      const uid = typeof payload.sub === 'string' ? parseUid(payload.sub) : null;
      if (uid === null) {
        throw unauthenticated('invalid token: sub must be a uid (an unsigned 32-bit integer)');
      }
      if (options.remember !== false) this.remember(token, uid, payload.exp);
      return {
        kind: 'user',
        uid,
        ...(payload.exp === undefined ? {} : { expiresAt: payload.exp * 1000 }),
      };
    } catch (err) {
      if (err instanceof MiniPushError) throw err;
      if (err instanceof joseErrors.JWTExpired) {
        throw new TokenExpiredError('token expired: get a new one', {
          cause: err,
        });
      }
      if (err instanceof joseErrors.JWTClaimValidationFailed) {
        throw unauthenticated(
          `invalid token: ${err.claim} claim ${err.reason === 'missing' ? 'is missing' : 'is not accepted'}`,
        );
      }
      if (err instanceof joseErrors.JOSEAlgNotAllowed) {
        throw unauthenticated('invalid token: signing algorithm not accepted');
      }
      throw unauthenticated('invalid token: signature or format does not verify');
    }
  }

  private remember(token: string, uid: number, exp: number | undefined): void {
    if (exp === undefined) return;
    if (this.verified.size >= VERIFIED_CACHE_SIZE) {
      // Oldest first: a Map iterates in insertion order.
      const oldest = this.verified.keys().next();
      if (!oldest.done) this.verified.delete(oldest.value);
    }
    this.verified.set(token, {
      uid,
      expiresAt: exp * 1000,
      until: Math.min(exp * 1000, Date.now() + VERIFIED_TTL_MS),
    });
  }

  private isApiKey(token: string): boolean {
    if (this.keyDigests.length === 0) return false;
    const candidate = digest(token);
    let found = false;
    for (const key of this.keyDigests) {
      if (timingSafeEqual(key, candidate)) found = true;
    }
    return found;
  }
}

function detectAlgorithm(pem: string): Promise<string> {
  const key = createPublicKey(pem);
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    return Promise.resolve(
      curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256',
    );
  }
  if (type === 'ed25519') return Promise.resolve('EdDSA');
  return Promise.resolve('RS256');
}

/** A user may only read and mark its own feed; services may act for any uid. */
export function authorizeUid(principal: Principal, uid: number): void {
  if (principal.kind === 'user' && principal.uid !== uid) {
    throw new ForbiddenError(`a user token for uid ${principal.uid} cannot access uid ${uid}`);
  }
}

/** Publishing for arbitrary recipients is for business servers only. */
export function requireService(principal: Principal, action: string): void {
  if (principal.kind !== 'service') {
    throw new ForbiddenError(`${action} needs an API key; user tokens cannot do it`);
  }
}
