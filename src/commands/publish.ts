import { v7 as timeOrderedUuid } from 'uuid';
import { validateCommand, type CommandLimits, type PublishCommand } from './command-record.js';

/** What a business server (or an end-to-end sender) asks to publish. */
export interface PublishInput {
  readonly id?: unknown;
  readonly to: unknown;
  readonly body: unknown;
  readonly createTime?: unknown;
  readonly from?: unknown;
}

const absent = (value: unknown) => value === undefined || value === null;

/**
 * Validates a publish and decides its record: a generated id when the caller gave none (a
 * time-ordered UUID, version 7: the indexes keyed by event id then grow at their end instead of
 * taking a write on a random page per event), unique
 * recipients, and a creation time fixed now so every partition's copy carries the same one.
 * The checks are the log's own (validateCommand), so what the API accepts the projector applies.
 */
export function decidePublish(
  input: PublishInput,
  limits: CommandLimits,
  now: number,
): PublishCommand {
  return validateCommand(
    {
      v: 1,
      type: 'publish',
      id: absent(input.id) ? timeOrderedUuid() : input.id,
      to: input.to,
      body: input.body,
      createTime: absent(input.createTime) ? now : input.createTime,
      ...(absent(input.from) ? {} : { from: input.from }),
    },
    limits,
  ) as PublishCommand;
}
