/** Claims the client reads from a JWT; it never verifies them (the server does). */
export interface TokenClaims {
  /** `sub`: the uid, as the server reads it. */
  readonly sub?: string;
  /** `exp`: expiry, seconds since the epoch. */
  readonly exp?: number;
}

function base64UrlDecode(text: string): string {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The payload claims of a JWT, or an empty object for anything that is not one. */
export function readClaims(token: string): TokenClaims {
  const payload = token.split('.')[1];
  if (payload === undefined) return {};
  try {
    const claims = JSON.parse(base64UrlDecode(payload)) as unknown;
    if (typeof claims !== 'object' || claims === null) return {};
    const { sub, exp } = claims as Record<string, unknown>;
    return {
      ...(typeof sub === 'string' ? { sub } : {}),
      ...(typeof exp === 'number' ? { exp } : {}),
    };
  } catch {
    return {};
  }
}

/** True when the token expires within `marginMs` of `now` (tokens without `exp` never do). */
export function expiresSoon(token: string, now: number, marginMs: number): boolean {
  const { exp } = readClaims(token);
  return exp !== undefined && exp * 1000 - now <= marginMs;
}
