import { randomUUID } from 'node:crypto';
import {
  validateBody,
  validateEventId,
  validateRecipients,
  validateUid,
  InvalidCommand,
  type CommandLimits,
  type PublishCommand,
} from './command-record.js';

/** What a business server (or an end-to-end sender) asks to publish. */
export interface PublishInput {
  readonly id?: unknown;
  readonly to: unknown;
  readonly body: unknown;
  readonly createTime?: unknown;
  readonly from?: unknown;
}

/**
 * Validates a publish and decides its record: a generated id when the caller gave none, unique
 * recipients, and a creation time fixed now so every partition's copy carries the same one.
 */
export function decidePublish(
  input: PublishInput,
  limits: CommandLimits,
  now: number,
): PublishCommand {
  const id =
    input.id === undefined || input.id === null ? randomUUID() : validateEventId(input.id, limits);
  const to = validateRecipients(input.to, limits);
  validateBody(input.body, limits);
  let createTime = now;
  if (input.createTime !== undefined && input.createTime !== null) {
    if (
      typeof input.createTime !== 'number' ||
      !Number.isSafeInteger(input.createTime) ||
      input.createTime < 0
    ) {
      throw new InvalidCommand(
        'createTime',
        'createTime must be milliseconds since the epoch (a non-negative integer)',
      );
    }
    createTime = input.createTime;
  }
  const from =
    input.from === undefined || input.from === null ? undefined : validateUid(input.from, 'from');
  return {
    v: 1,
    type: 'publish',
    id,
    to,
    body: input.body,
    createTime,
    ...(from === undefined ? {} : { from }),
  };
}
