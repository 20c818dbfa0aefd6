import type { Knex } from 'knex';
import { authorizeUid, requireService, type Principal } from './auth/authenticator.js';
import {
  InvalidCommand,
  type CommandLimits,
  type CommandRecord,
} from './commands/command-record.js';
import { CommandWriter, formatPositions } from './commands/command-writer.js';
import { decideMarkRead } from './commands/mark-read.js';
import { decideMarkReadUpTo } from './commands/mark-read-up-to.js';
import { decideMarkUnread } from './commands/mark-unread.js';
import { decidePublish, type PublishInput } from './commands/publish.js';
import { isUid, MAX_SEQ } from './domain/uid.js';
import { MiniPushError, type ErrorCode } from './errors.js';
import type { CommandLog, LogPosition } from './log/log.js';
import { diff } from './queries/diff.js';
import type { FeedPage } from './queries/feed-event.js';
import { fetchRange } from './queries/fetch-range.js';
import { getCommandResult, getEventSeqs } from './queries/get-publish-result.js';
import {
  getReadStates,
  type ReadStates,
  type ReadStatesFormat,
} from './queries/get-read-states.js';
import { getStats, type UserStats } from './queries/get-stats.js';
import type { ProjectionProgress } from './queries/projection-progress.js';

export interface ServiceSettings extends CommandLimits {
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly waitTimeoutMs: number;
}

export interface ServiceDeps {
  readonly db: Knex;
  readonly log: CommandLog;
  readonly progress: ProjectionProgress;
  readonly settings: ServiceSettings;
  readonly now?: () => number;
  /** Hears about every accepted command, e.g. for metrics. */
  readonly onCommand?: (command: CommandRecord) => void;
}

export type PublishResult =
  { id: string; position: string } | { id: string; seqs: Record<string, number> };
export type MarkResult = { position: string } | { changed: number };

/** Extra record headers a transport adds, such as W3C trace context. */
export type RecordHeaders = Readonly<Record<string, string>>;

function errorCodeFor(err: InvalidCommand): ErrorCode {
  const field = err.field.replace(/\[\d+\]$/, '');
  if (field === 'to' && /recipients; the limit/.test(err.message))
    return 'MINIPUSH_TOO_MANY_RECIPIENTS';
  if (field === 'body') return err.tooLarge ? 'MINIPUSH_BODY_TOO_LARGE' : 'MINIPUSH_INVALID_EVENT';
  if (field === 'to' || field === 'uid' || field === 'from') return 'MINIPUSH_INVALID_UID';
  if (field === 'seqs' || field === 'upTo') return 'MINIPUSH_INVALID_SEQ';
  if (field === 'id' || field === 'createTime') return 'MINIPUSH_INVALID_EVENT';
  return 'MINIPUSH_BAD_REQUEST';
}

/** Runs a command decision and turns a validation failure into a client error naming the field. */
function decide<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof InvalidCommand)
      throw new MiniPushError(errorCodeFor(err), err.message, { cause: err });
    throw err;
  }
}

function checkUid(uid: unknown): number {
  if (!isUid(uid)) {
    throw new MiniPushError('MINIPUSH_INVALID_UID', 'uid must be an unsigned 32-bit integer');
  }
  return uid;
}

function checkSeq(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_SEQ) {
    throw new MiniPushError(
      'MINIPUSH_INVALID_SEQ',
      `${field} must be an integer from ${min} to ${MAX_SEQ}`,
    );
  }
  return value;
}

/**
 * What every transport (REST, gRPC, WebSocket) offers, with the same authorisation, validation
 * and errors: commands go to the write log, queries read the projected tables.
 */
export class MiniPushService {
  private readonly writer: CommandWriter;
  private readonly now: () => number;

  constructor(private readonly deps: ServiceDeps) {
    this.writer = new CommandWriter(deps.log);
    this.now = deps.now ?? Date.now;
  }

  get settings(): ServiceSettings {
    return this.deps.settings;
  }

  private async append(command: CommandRecord, headers?: RecordHeaders): Promise<LogPosition[]> {
    try {
      const positions = await this.writer.write(command, headers);
      this.deps.onCommand?.(command);
      return positions;
    } catch (err) {
      throw new MiniPushError(
        'MINIPUSH_UNAVAILABLE',
        'the write log did not accept the command; retry',
        { cause: err },
      );
    }
  }

  private async waitProjected(positions: readonly LogPosition[]): Promise<void> {
    const ok = await this.deps.progress.waitFor(positions, this.deps.settings.waitTimeoutMs);
    if (!ok) {
      throw new MiniPushError(
        'MINIPUSH_WAIT_TIMEOUT',
        `accepted at position ${formatPositions(positions)} but not projected within ${this.deps.settings.waitTimeoutMs} ms; it will still be applied`,
      );
    }
  }

  async publish(
    principal: Principal,
    input: PublishInput,
    options: { wait?: boolean; headers?: RecordHeaders } = {},
  ): Promise<PublishResult> {
    requireService(principal, 'publishing events');
    const command = decide(() => decidePublish(input, this.deps.settings, this.now()));
    return this.publishCommand(command, options);
  }

  /** Publishes an end-to-end message from a user (the hub checks the switch and the limits). */
  async publishAs(
    sender: number,
    input: PublishInput,
    options: { headers?: RecordHeaders } = {},
  ): Promise<PublishResult> {
    const command = decide(() =>
      decidePublish(
        { to: input.to, body: input.body, from: sender },
        this.deps.settings,
        this.now(),
      ),
    );
    return this.publishCommand(command, options);
  }

  private async publishCommand(
    command: ReturnType<typeof decidePublish>,
    options: { wait?: boolean; headers?: RecordHeaders },
  ): Promise<PublishResult> {
    const positions = await this.append(command, options.headers);
    if (!options.wait) return { id: command.id, position: formatPositions(positions) };
    await this.waitProjected(positions);
    return { id: command.id, seqs: await getEventSeqs(this.deps.db, command.id, command.to) };
  }

  async markRead(
    principal: Principal,
    uid: unknown,
    input: { seqs?: unknown; upTo?: unknown },
    options: { wait?: boolean; headers?: RecordHeaders } = {},
  ): Promise<MarkResult> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const hasSeqs = input.seqs !== undefined && input.seqs !== null;
    const hasUpTo = input.upTo !== undefined && input.upTo !== null;
    if (hasSeqs === hasUpTo) {
      throw new MiniPushError(
        'MINIPUSH_BAD_REQUEST',
        'give either seqs (a list) or upTo (a seq), not both or neither',
      );
    }
    const command = decide(() =>
      hasSeqs
        ? decideMarkRead(user, input.seqs, this.deps.settings)
        : decideMarkReadUpTo(user, input.upTo),
    );
    return this.mark(command, options);
  }

  async markUnread(
    principal: Principal,
    uid: unknown,
    input: { seqs?: unknown },
    options: { wait?: boolean; headers?: RecordHeaders } = {},
  ): Promise<MarkResult> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const command = decide(() => decideMarkUnread(user, input.seqs, this.deps.settings));
    return this.mark(command, options);
  }

  private async mark(
    command: CommandRecord,
    options: { wait?: boolean; headers?: RecordHeaders },
  ): Promise<MarkResult> {
    const positions = await this.append(command, options.headers);
    if (!options.wait) return { position: formatPositions(positions) };
    await this.waitProjected(positions);
    const position = positions[0]!;
    const changed = await getCommandResult(
      this.deps.db,
      this.deps.log.topic,
      position.partition,
      position.offset,
    );
    return { changed: changed ?? 0 };
  }

  private checkLimit(limit: unknown): number {
    if (limit === undefined || limit === null) return this.deps.settings.defaultLimit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
      throw new MiniPushError('MINIPUSH_BAD_REQUEST', 'limit must be a positive integer');
    }
    if (limit > this.deps.settings.maxLimit) {
      throw new MiniPushError(
        'MINIPUSH_LIMIT_TOO_LARGE',
        `limit ${limit} is over the maximum of ${this.deps.settings.maxLimit}`,
      );
    }
    return limit;
  }

  async diff(
    principal: Principal,
    uid: unknown,
    after: unknown,
    limit?: unknown,
  ): Promise<FeedPage> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const from = after === undefined || after === null ? 0 : checkSeq(after, 'after', 0);
    return diff(this.deps.db, { uid: user, after: from, limit: this.checkLimit(limit) });
  }

  async fetch(
    principal: Principal,
    uid: unknown,
    range: { from: unknown; to: unknown; order?: unknown; limit?: unknown },
  ): Promise<FeedPage> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const from = checkSeq(range.from, 'from', 0);
    const to = checkSeq(range.to, 'to', 0);
    if (to < from) {
      throw new MiniPushError(
        'MINIPUSH_INVALID_RANGE',
        `from (${from}) must not be greater than to (${to})`,
      );
    }
    const order = range.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') {
      throw new MiniPushError('MINIPUSH_BAD_REQUEST', 'order must be asc or desc');
    }
    const limit =
      range.limit === undefined || range.limit === null
        ? this.deps.settings.maxLimit
        : this.checkLimit(range.limit);
    return fetchRange(this.deps.db, { uid: user, from, to, order, limit });
  }

  async stats(principal: Principal, uid: unknown): Promise<UserStats> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    return getStats(this.deps.db, user);
  }

  async readStates(
    principal: Principal,
    uid: unknown,
    upTo: unknown,
    format: unknown,
  ): Promise<ReadStates> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const top = upTo === undefined || upTo === null ? undefined : checkSeq(upTo, 'upTo', 0);
    const fmt = (format ?? 'roaring') as ReadStatesFormat;
    if (fmt !== 'roaring' && fmt !== 'blocks' && fmt !== 'compact') {
      throw new MiniPushError('MINIPUSH_BAD_REQUEST', 'format must be roaring, blocks or compact');
    }
    return getReadStates(this.deps.db, {
      uid: user,
      ...(top === undefined ? {} : { upTo: top }),
      format: fmt,
    });
  }
}
