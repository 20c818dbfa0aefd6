import { isSeq, isUid, MAX_SEQ } from '../domain/uid.js';
import {
  BadRequestError,
  BodyTooLargeError,
  InvalidEventError,
  InvalidSeqError,
  InvalidUidError,
  TooManyRecipientsError,
} from '../errors.js';

/**
 * The commands topic's record schema, version 1 (documented in docs/kafka-commands.md).
 * Records are UTF-8 JSON objects with a `v` (schema version) and a `type`.
 */
export const COMMAND_SCHEMA_VERSION = 1;

export interface PublishCommand {
  readonly v: 1;
  readonly type: 'publish';
  /** Caller's idempotency key: an event id is delivered at most once per recipient. */
  readonly id: string;
  /** Recipients, deduplicated, in the caller's order. */
  readonly to: readonly number[];
  /** Any JSON value. */
  readonly body: unknown;
  /** Caller's creation time in ms since the epoch; the log timestamp when absent. */
  readonly createTime?: number;
  /** Sending user of an end-to-end message. */
  readonly from?: number;
}

/**
 * State marks: a list of seqs, or every stored seq up to one. Mark read implies seen; archived
 * is independent of both.
 */
export interface MarkSeqsCommand<T extends StateSeqsCommandType> {
  readonly v: 1;
  readonly type: T;
  readonly uid: number;
  readonly seqs: readonly number[];
}

export interface MarkUpToCommand<T extends StateUpToCommandType> {
  readonly v: 1;
  readonly type: T;
  readonly uid: number;
  readonly upTo: number;
}

export const STATE_SEQS_COMMAND_TYPES = [
  'markRead',
  'markUnread',
  'markSeen',
  'archive',
  'unarchive',
] as const;
export const STATE_UP_TO_COMMAND_TYPES = [
  'markReadUpTo',
  'markSeenUpTo',
  'archiveUpTo',
  'unarchiveUpTo',
] as const;
export type StateSeqsCommandType = (typeof STATE_SEQS_COMMAND_TYPES)[number];
export type StateUpToCommandType = (typeof STATE_UP_TO_COMMAND_TYPES)[number];
export type MarkReadCommand = MarkSeqsCommand<'markRead'>;
export type MarkReadUpToCommand = MarkUpToCommand<'markReadUpTo'>;
export type MarkUnreadCommand = MarkSeqsCommand<'markUnread'>;
export type MarkSeenCommand = MarkSeqsCommand<'markSeen'>;
export type MarkSeenUpToCommand = MarkUpToCommand<'markSeenUpTo'>;
export type ArchiveCommand = MarkSeqsCommand<'archive'>;
export type ArchiveUpToCommand = MarkUpToCommand<'archiveUpTo'>;
export type UnarchiveCommand = MarkSeqsCommand<'unarchive'>;
export type UnarchiveUpToCommand = MarkUpToCommand<'unarchiveUpTo'>;

/**
 * Removes a user's events below `floor` (written by the TTL cleaner for expired events): the
 * floor never goes down and never past the head + 1.
 */
export interface ExpireCommand {
  readonly v: 1;
  readonly type: 'expire';
  readonly uid: number;
  /** The lowest seq the user keeps. */
  readonly floor: number;
}

/** Every command that changes a user's read, seen or archived state. */
export type StateCommand =
  | MarkReadCommand
  | MarkReadUpToCommand
  | MarkUnreadCommand
  | MarkSeenCommand
  | MarkSeenUpToCommand
  | ArchiveCommand
  | ArchiveUpToCommand
  | UnarchiveCommand
  | UnarchiveUpToCommand;
export type CommandRecord = PublishCommand | StateCommand | ExpireCommand;
export type CommandType = CommandRecord['type'];

/** Every command type this build reads, in the order docs/kafka-commands.md lists them. */
export const COMMAND_TYPES = [
  'publish',
  'markRead',
  'markReadUpTo',
  'markUnread',
  'markSeen',
  'markSeenUpTo',
  'archive',
  'archiveUpTo',
  'unarchive',
  'unarchiveUpTo',
  'expire',
] as const satisfies readonly CommandType[];

/** Limits a command must respect, from the configuration. */
export interface CommandLimits {
  readonly bodyLimitBytes: number;
  readonly maxRecipients: number;
  readonly maxEventIdLength: number;
  readonly maxSeqsPerCommand: number;
}

/**
 * What the validators throw: an `InvalidInput` of the catalogue code that fits, naming the
 * field at fault. `minipush/producer` callers know it by this name.
 */
export { InvalidInput as InvalidCommand } from '../errors.js';

const EVENT_ID = /^[\x21-\x7e]+$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function validateEventId(id: unknown, limits: CommandLimits): string {
  if (typeof id !== 'string' || id.length === 0) {
    throw new InvalidEventError('id', 'id must be a non-empty string');
  }
  if (id.length > limits.maxEventIdLength) {
    throw new InvalidEventError('id', `id is longer than ${limits.maxEventIdLength} characters`);
  }
  if (!EVENT_ID.test(id)) {
    throw new InvalidEventError('id', 'id may hold only printable ASCII characters without spaces');
  }
  return id;
}

export function validateUid(value: unknown, field: string): number {
  if (!isUid(value)) {
    throw new InvalidUidError(field, `${field} must be an unsigned 32-bit integer`);
  }
  return value;
}

/** Validates a recipient list and removes duplicates, keeping the first occurrence's order. */
export function validateRecipients(to: unknown, limits: CommandLimits): number[] {
  if (!Array.isArray(to) || to.length === 0) {
    throw new InvalidUidError('to', 'to must be a non-empty array of uids');
  }
  const unique = new Set<number>();
  for (const [index, uid] of to.entries()) {
    validateUid(uid, `to[${index}]`);
    unique.add(uid as number);
  }
  if (unique.size > limits.maxRecipients) {
    throw new TooManyRecipientsError(
      'to',
      `to has ${unique.size} recipients; the limit is ${limits.maxRecipients}`,
    );
  }
  return [...unique];
}

/** Serialised size of a body; throws when it is not JSON-serialisable or too large. */
export function validateBody(body: unknown, limits: CommandLimits, field = 'body'): string {
  if (body === undefined) {
    throw new InvalidEventError(field, `${field} is required (any JSON value)`);
  }
  let text: string | undefined;
  try {
    text = JSON.stringify(body);
  } catch {
    text = undefined;
  }
  if (text === undefined) {
    throw new InvalidEventError(field, `${field} must be a JSON value`);
  }
  const size = Buffer.byteLength(text);
  if (size > limits.bodyLimitBytes) {
    throw new BodyTooLargeError(
      field,
      `${field} is ${size} bytes as JSON; the limit is ${limits.bodyLimitBytes}`,
    );
  }
  return text;
}

export function validateSeqs(seqs: unknown, limits: CommandLimits): number[] {
  if (!Array.isArray(seqs) || seqs.length === 0) {
    throw new InvalidSeqError('seqs', 'seqs must be a non-empty array of seqs');
  }
  if (seqs.length > limits.maxSeqsPerCommand) {
    throw new InvalidSeqError(
      'seqs',
      `seqs has ${seqs.length} entries; the limit is ${limits.maxSeqsPerCommand}`,
    );
  }
  const unique = new Set<number>();
  for (const [index, seq] of seqs.entries()) {
    if (!isSeq(seq)) {
      throw new InvalidSeqError(
        `seqs[${index}]`,
        `seqs[${index}] must be an integer from 1 to ${MAX_SEQ}`,
      );
    }
    unique.add(seq);
  }
  return [...unique].sort((a, b) => a - b);
}

export function validateSeq(value: unknown, field: string): number {
  if (!isSeq(value)) {
    throw new InvalidSeqError(field, `${field} must be an integer from 1 to ${MAX_SEQ}`);
  }
  return value;
}

function validateTime(value: unknown, field: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidEventError(
      field,
      `${field} must be milliseconds since the epoch (a non-negative integer)`,
    );
  }
  return value;
}

function checkFields(input: Record<string, unknown>, allowed: readonly string[]): void {
  for (const key of Object.keys(input)) {
    if (!allowed.includes(key)) {
      throw new BadRequestError(key, `unknown field "${key}"`);
    }
  }
}

/**
 * Validates a decoded command object (from the log or from a transport) and returns it in its
 * canonical form. Throws an `InvalidInput` (InvalidCommand) naming the field at fault.
 */
export function validateCommand(input: unknown, limits: CommandLimits): CommandRecord {
  if (!isRecord(input)) {
    throw new BadRequestError('record', 'a command must be a JSON object');
  }
  if (input.v !== COMMAND_SCHEMA_VERSION) {
    throw new BadRequestError(
      'v',
      `unsupported schema version ${JSON.stringify(input.v) ?? 'undefined'}; this build reads v${COMMAND_SCHEMA_VERSION}`,
    );
  }
  switch (input.type) {
    case 'publish': {
      checkFields(input, ['v', 'type', 'id', 'to', 'body', 'createTime', 'from']);
      const id = validateEventId(input.id, limits);
      const to = validateRecipients(input.to, limits);
      validateBody(input.body, limits);
      const createTime = validateTime(input.createTime, 'createTime');
      const from =
        input.from === undefined || input.from === null
          ? undefined
          : validateUid(input.from, 'from');
      return {
        v: 1,
        type: 'publish',
        id,
        to,
        body: input.body,
        ...(createTime === undefined ? {} : { createTime }),
        ...(from === undefined ? {} : { from }),
      };
    }
    case 'markRead':
    case 'markUnread':
    case 'markSeen':
    case 'archive':
    case 'unarchive': {
      checkFields(input, ['v', 'type', 'uid', 'seqs']);
      const uid = validateUid(input.uid, 'uid');
      const seqs = validateSeqs(input.seqs, limits);
      return { v: 1, type: input.type, uid, seqs };
    }
    case 'markReadUpTo':
    case 'markSeenUpTo':
    case 'archiveUpTo':
    case 'unarchiveUpTo': {
      checkFields(input, ['v', 'type', 'uid', 'upTo']);
      const uid = validateUid(input.uid, 'uid');
      const upTo = validateSeq(input.upTo, 'upTo');
      return { v: 1, type: input.type, uid, upTo };
    }
    case 'expire': {
      checkFields(input, ['v', 'type', 'uid', 'floor']);
      const uid = validateUid(input.uid, 'uid');
      const floor = validateSeq(input.floor, 'floor');
      return { v: 1, type: 'expire', uid, floor };
    }
    default:
      throw new BadRequestError(
        'type',
        `unknown command type ${JSON.stringify(input.type) ?? 'undefined'}; expected ${COMMAND_TYPES.join(', ')}`,
      );
  }
}

/** Decodes and validates a record value from the log. */
export function decodeCommand(value: Uint8Array | null, limits: CommandLimits): CommandRecord {
  if (value === null || value.length === 0) {
    throw new BadRequestError('record', 'empty record value');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(
      Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('utf8'),
    );
  } catch {
    throw new BadRequestError('record', 'record value is not valid JSON');
  }
  return validateCommand(parsed, limits);
}

export function encodeCommand(command: CommandRecord): Buffer {
  return Buffer.from(JSON.stringify(command));
}

/** The uids a command touches. */
export function uidsOf(command: CommandRecord): readonly number[] {
  return command.type === 'publish' ? command.to : [command.uid];
}

/** The seqs or the "up to" seq a state mark names: exactly one of the two. */
export interface MarkTarget {
  readonly seqs?: unknown;
  readonly upTo?: unknown;
}

/**
 * A state mark of a list of seqs or of every stored seq up to one, validated: `types` names the
 * command for each form.
 */
export function decideStateMark<S extends StateSeqsCommandType, U extends StateUpToCommandType>(
  types: { readonly seqs: S; readonly upTo: U },
  uid: unknown,
  target: MarkTarget,
  limits: CommandLimits,
): MarkSeqsCommand<S> | MarkUpToCommand<U> {
  const user = validateUid(uid, 'uid');
  const hasSeqs = target.seqs !== undefined && target.seqs !== null;
  const hasUpTo = target.upTo !== undefined && target.upTo !== null;
  if (hasSeqs === hasUpTo) {
    throw new BadRequestError(
      'seqs',
      'give either seqs (a list) or upTo (a seq), not both or neither',
    );
  }
  return hasSeqs
    ? { v: 1, type: types.seqs, uid: user, seqs: validateSeqs(target.seqs, limits) }
    : { v: 1, type: types.upTo, uid: user, upTo: validateSeq(target.upTo, 'upTo') };
}
