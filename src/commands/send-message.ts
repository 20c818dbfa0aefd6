import { BodyTooLargeError, ForbiddenError, RateLimitedError } from '../errors.js';
import type { PublishInput } from './publish.js';

/** The end-to-end message settings; each is documented on the configuration. */
export interface MessageLimits {
  readonly e2eEnabled: boolean;
  readonly e2eMaxBodyBytes: number;
  readonly e2eRatePerMinute: number;
}

const MINUTE_MS = 60_000;

/**
 * Messages each user sent in the current minute, per process: a user spread over several hubs
 * may send up to the rate on each.
 */
export class MessageRate {
  private readonly windows = new Map<number, { start: number; count: number }>();

  /** Counts one message of `uid` at `now`; returns the ms until it may send again when over. */
  take(uid: number, now: number, perMinute: number): number | null {
    const window = this.windows.get(uid);
    if (!window || now - window.start >= MINUTE_MS) {
      this.windows.set(uid, { start: now, count: 1 });
      return null;
    }
    if (window.count >= perMinute) return window.start + MINUTE_MS - now;
    window.count++;
    return null;
  }
}

/**
 * Decides whether a user may send an end-to-end message (the switch, the body size, the rate)
 * and returns the publish it becomes, sent by that user; the publish's own checks follow.
 */
export function decideSendMessage(
  sender: number,
  input: { readonly to: unknown; readonly body: unknown },
  limits: MessageLimits,
  rate: MessageRate,
  now: number,
): PublishInput {
  if (!limits.e2eEnabled) {
    throw new ForbiddenError('end-to-end messages are disabled on this server');
  }
  const size = Buffer.byteLength(JSON.stringify(input.body ?? null));
  if (size > limits.e2eMaxBodyBytes) {
    throw new BodyTooLargeError(
      'body',
      `body is ${size} bytes as JSON; the limit for messages is ${limits.e2eMaxBodyBytes}`,
    );
  }
  const waitMs = rate.take(sender, now, limits.e2eRatePerMinute);
  if (waitMs !== null) {
    throw new RateLimitedError(
      `at most ${limits.e2eRatePerMinute} messages per minute; try again in ${Math.ceil(waitMs / 1000)} s`,
    );
  }
  return { to: input.to, body: input.body, from: sender };
}
