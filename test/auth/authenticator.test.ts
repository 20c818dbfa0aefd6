import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { Authenticator } from '../../src/auth/authenticator.js';

const secret = 'authenticator-test-secret-0123456789';

function authenticator() {
  return new Authenticator({
    apiKeys: [],
    jwtSecret: secret,
    jwtPublicKey: '',
    jwtJwksUrl: '',
    jwtIssuer: '',
    jwtAudience: '',
  });
}

async function token(uid: number, exp: number, key = secret) {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(String(uid))
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(key));
}

describe('Authenticator', () => {
  it('should keep answering for a verified token, and refuse it once it expires', async () => {
    const auth = authenticator();
    const exp = Math.floor(Date.now() / 1000) + 2;
    const user = await token(7, exp);
    // The second answer is the remembered one; both say when the token expires.
    expect(await auth.authenticateToken(user)).toEqual({
      kind: 'user',
      uid: 7,
      expiresAt: exp * 1000,
    });
    expect(await auth.authenticateToken(user)).toEqual({
      kind: 'user',
      uid: 7,
      expiresAt: exp * 1000,
    });
    await new Promise((resolve) => setTimeout(resolve, exp * 1000 - Date.now() + 50));
    await expect(auth.authenticateToken(user)).rejects.toMatchObject({
      code: 'MINIPUSH_TOKEN_EXPIRED',
    });
  });

  it('should not take a token with another signature for a verified one', async () => {
    const auth = authenticator();
    const exp = Math.floor(Date.now() / 1000) + 60;
    await auth.authenticateToken(await token(7, exp));
    await expect(
      auth.authenticateToken(await token(7, exp, 'another-secret-0123456789-abcdef')),
    ).rejects.toMatchObject({
      code: 'MINIPUSH_UNAUTHENTICATED',
    });
  });
});
