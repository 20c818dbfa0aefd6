import type { Knex } from 'knex';
import { authorizeUid, requireService, type Principal } from './auth/authenticator.js';
import {
  validateEventId,
  type CommandLimits,
  type CommandRecord,
  type MarkTarget,
  type PublishCommand,
} from './commands/command-record.js';
import {
  CommandWriter,
  formatPositions,
  parsePositions,
  type AroundAppend,
} from './commands/command-writer.js';
import { decideMarkReadTarget } from './commands/mark-read.js';
import { decideMarkUnread } from './commands/mark-unread.js';
import { decideMarkSeen } from './commands/mark-seen.js';
import { decideArchive } from './commands/archive.js';
import { decideUnarchive } from './commands/unarchive.js';
import {
  DEFAULT_STATUS,
  INBOX_STATES,
  STATUS_FILTERS,
  type InboxStateName,
  type StatusFilter,
} from './domain/inbox-state.js';
import { decidePublish, type PublishInput } from './commands/publish.js';
import { MessageRate, decideSendMessage, type MessageLimits } from './commands/send-message.js';
import { isUid, MAX_SEQ } from './domain/uid.js';
import {
  BadRequestError,
  ForbiddenError,
  IdempotencyConflictError,
  InvalidRangeError,
  InvalidSeqError,
  InvalidUidError,
  LimitTooLargeError,
  UnavailableError,
  WaitTimeoutError,
  isUnavailable,
} from './errors.js';
import type { CommandLog, LogPosition } from './log/log.js';
import { diff } from './queries/diff.js';
import type { FeedPage } from './queries/feed-event.js';
import { fetchRange } from './queries/fetch-range.js';
import {
  getCommandResult,
  getEventContent,
  getEventSeqs,
  getPublishConflicts,
} from './queries/get-publish-result.js';
import {
  getReadStates,
  type ReadStates,
  type ReadStatesFormat,
} from './queries/get-read-states.js';
import { getStats, type UserStats } from './queries/get-stats.js';
import { StoreUserViews, type UserViews } from './queries/user-view.js';
import type { ProjectionProgress } from './projections/projection-progress.js';

export interface ServiceSettings extends CommandLimits, MessageLimits {
  readonly defaultLimit: number;
  readonly maxLimit: number;
  readonly waitTimeoutMs: number;
}

export interface ServiceDeps {
  readonly db: Knex;
  /** Where queries read users' feeds: a read cache, or the store itself when absent. */
  readonly views?: UserViews;
  readonly log: CommandLog;
  readonly progress: ProjectionProgress;
  readonly settings: ServiceSettings;
  readonly now?: () => number;
  /** Hears about every accepted command, e.g. for metrics. */
  readonly onCommand?: (command: CommandRecord) => void;
  /** Wraps every append to the write log, e.g. in a producer span (telemetry). */
  readonly aroundAppend?: AroundAppend;
}

export type PublishResult =
  { id: string; position: string } | { id: string; seqs: Record<string, number> };
export type MarkResult = { position: string } | { changed: number };

/** What became of a publish (see {@link MiniPushService.publishResult}). */
export interface PublishState {
  readonly id: string;
  readonly position: string;
  readonly state: 'pending' | 'applied' | 'conflict';
  /** For a conflict: why, naming the id. */
  readonly message?: string;
}

/** A read of the projected tables; an unreachable store is the caller's retryable error. */
async function fromStore<T>(read: Promise<T>): Promise<T> {
  try {
    return await read;
  } catch (err) {
    if (isUnavailable(err)) {
      throw new UnavailableError('the store is unavailable; retry', { cause: err });
    }
    throw err;
  }
}

/** How long a publish waits for the store to say whether its id holds other content. */
const CONFLICT_CHECK_MS = 250;

function checkUid(uid: unknown): number {
  if (!isUid(uid)) {
    throw new InvalidUidError('uid', 'uid must be an unsigned 32-bit integer');
  }
  return uid;
}

function checkStatus(value: unknown): StatusFilter {
  if (value === undefined || value === null) return DEFAULT_STATUS;
  if (typeof value !== 'string' || !(STATUS_FILTERS as readonly string[]).includes(value)) {
    throw new BadRequestError('status', `status must be one of ${STATUS_FILTERS.join(', ')}`);
  }
  return value as StatusFilter;
}

function checkState(value: unknown): InboxStateName {
  if (value === undefined || value === null) return 'read';
  if (typeof value !== 'string' || !(INBOX_STATES as readonly string[]).includes(value)) {
    throw new BadRequestError('state', `state must be one of ${INBOX_STATES.join(', ')}`);
  }
  return value as InboxStateName;
}

function checkSeq(value: unknown, field: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > MAX_SEQ) {
    throw new InvalidSeqError(field, `${field} must be an integer from ${min} to ${MAX_SEQ}`);
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
  private readonly messageRate = new MessageRate();
  private readonly views: UserViews;

  constructor(private readonly deps: ServiceDeps) {
    this.writer = new CommandWriter(deps.log, deps.aroundAppend);
    this.now = deps.now ?? Date.now;
    this.views = deps.views ?? new StoreUserViews(deps.db);
  }

  get settings(): ServiceSettings {
    return this.deps.settings;
  }

  private async append(command: CommandRecord): Promise<LogPosition[]> {
    try {
      const positions = await this.writer.write(command);
      this.deps.onCommand?.(command);
      return positions;
    } catch (err) {
      throw new UnavailableError('the write log did not accept the command; retry', {
        cause: err,
      });
    }
  }

  private async waitProjected(positions: readonly LogPosition[]): Promise<void> {
    const ok = await this.deps.progress.waitFor(positions, this.deps.settings.waitTimeoutMs);
    if (!ok) {
      throw new WaitTimeoutError(
        `accepted at position ${formatPositions(positions)} but not projected within ${this.deps.settings.waitTimeoutMs} ms; it will still be applied`,
      );
    }
  }

  async publish(
    principal: Principal,
    input: PublishInput,
    options: { wait?: boolean } = {},
  ): Promise<PublishResult> {
    requireService(principal, 'publishing events');
    const command = decidePublish(input, this.deps.settings, this.now());
    // A caller's id that already holds other content is refused before it enters the log;
    // one that races its original there is caught by the projector (see publishResult).
    if (input.id !== undefined && input.id !== null) await this.refuseConflict(command);
    return this.publishCommand(command, options);
  }

  /** Publishes an end-to-end message from the user of a session (docs/websocket.md). */
  async sendMessage(
    principal: Principal,
    input: { readonly to: unknown; readonly body: unknown },
  ): Promise<PublishResult> {
    if (principal.kind !== 'user') {
      throw new ForbiddenError('end-to-end messages are sent by users, over their session');
    }
    const now = this.now();
    const publish = decideSendMessage(
      principal.uid,
      input,
      this.deps.settings,
      this.messageRate,
      now,
    );
    return this.publishCommand(decidePublish(publish, this.deps.settings, now), {});
  }

  /**
   * Best effort: publishing needs only the write log, so a store that does not answer within
   * {@link CONFLICT_CHECK_MS} skips the check (the projector still catches the conflict).
   */
  private async refuseConflict(command: PublishCommand): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const held = await Promise.race([
      getEventContent(this.deps.db, command.id).catch((err: unknown) => {
        if (isUnavailable(err)) return null;
        throw err;
      }),
      new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), CONFLICT_CHECK_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    if (!held) return;
    const body = JSON.stringify(command.body);
    const sender = command.from ?? null;
    if (held.body === body && held.sender === sender) return;
    throw new IdempotencyConflictError(
      `idempotency conflict: event id ${command.id} was published before with another ` +
        `${held.body !== body ? 'body' : 'sender'}; the first content stays: ` +
        'publish new content under a new id',
    );
  }

  private async publishCommand(
    command: ReturnType<typeof decidePublish>,
    options: { wait?: boolean },
  ): Promise<PublishResult> {
    const positions = await this.append(command);
    if (!options.wait) return { id: command.id, position: formatPositions(positions) };
    await this.waitProjected(positions);
    const conflicts = await fromStore(
      getPublishConflicts(this.deps.db, this.deps.log.topic, positions),
    );
    if (conflicts.length > 0) throw new IdempotencyConflictError(conflicts[0]!);
    return {
      id: command.id,
      seqs: await fromStore(getEventSeqs(this.deps.db, command.id, command.to)),
    };
  }

  /**
   * What became of a publish answered without waiting: still `pending`, `applied`, or a
   * `conflict` (its id was published before with other content), by the id and the position
   * its answer gave.
   */
  async publishResult(principal: Principal, id: unknown, position: unknown): Promise<PublishState> {
    requireService(principal, 'reading publish results');
    const eventId = validateEventId(id, this.deps.settings);
    const positions = typeof position === 'string' ? parsePositions(position) : null;
    if (positions === null) {
      throw new BadRequestError(
        'position',
        'position must be <partition>:<offset>[,<partition>:<offset>…] as the publish answered it',
      );
    }
    const projected = await fromStore(this.deps.progress.isProjected(positions));
    const conflicts = await fromStore(
      getPublishConflicts(this.deps.db, this.deps.log.topic, positions, eventId),
    );
    const state = conflicts.length > 0 ? 'conflict' : projected ? 'applied' : 'pending';
    return {
      id: eventId,
      position: formatPositions(positions),
      state,
      ...(conflicts.length > 0 ? { message: conflicts[0]! } : {}),
    };
  }

  async markRead(
    principal: Principal,
    uid: unknown,
    input: { seqs?: unknown; upTo?: unknown },
    options: { wait?: boolean } = {},
  ): Promise<MarkResult> {
    return this.stateMark(principal, uid, input, options, decideMarkReadTarget);
  }

  async markUnread(
    principal: Principal,
    uid: unknown,
    input: { seqs?: unknown },
    options: { wait?: boolean } = {},
  ): Promise<MarkResult> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const command = decideMarkUnread(user, input.seqs, this.deps.settings);
    return this.mark(command, options);
  }

  /** Marks seqs seen, or every stored seq up to one (opening the inbox: the badge clears). */
  markSeen(
    principal: Principal,
    uid: unknown,
    input: MarkTarget,
    options: { wait?: boolean } = {},
  ) {
    return this.stateMark(principal, uid, input, options, decideMarkSeen);
  }

  archive(principal: Principal, uid: unknown, input: MarkTarget, options: { wait?: boolean } = {}) {
    return this.stateMark(principal, uid, input, options, decideArchive);
  }

  unarchive(
    principal: Principal,
    uid: unknown,
    input: MarkTarget,
    options: { wait?: boolean } = {},
  ) {
    return this.stateMark(principal, uid, input, options, decideUnarchive);
  }

  private async stateMark(
    principal: Principal,
    uid: unknown,
    input: MarkTarget,
    options: { wait?: boolean },
    decide: (uid: number, target: MarkTarget, limits: CommandLimits) => CommandRecord,
  ): Promise<MarkResult> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    return this.mark(decide(user, input, this.deps.settings), options);
  }

  private async mark(command: CommandRecord, options: { wait?: boolean }): Promise<MarkResult> {
    const positions = await this.append(command);
    if (!options.wait) return { position: formatPositions(positions) };
    await this.waitProjected(positions);
    const position = positions[0]!;
    const changed = await fromStore(
      getCommandResult(this.deps.db, this.deps.log.topic, position.partition, position.offset),
    );
    return { changed: changed ?? 0 };
  }

  private checkLimit(limit: unknown): number {
    if (limit === undefined || limit === null) return this.deps.settings.defaultLimit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) {
      throw new BadRequestError('limit', 'limit must be a positive integer');
    }
    if (limit > this.deps.settings.maxLimit) {
      throw new LimitTooLargeError(
        'limit',
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
    status?: unknown,
  ): Promise<FeedPage> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const from = after === undefined || after === null ? 0 : checkSeq(after, 'after', 0);
    const pageLimit = this.checkLimit(limit);
    const filter = checkStatus(status);
    return fromStore(
      diff(this.views, { uid: user, after: from, limit: pageLimit, status: filter }),
    );
  }

  async fetch(
    principal: Principal,
    uid: unknown,
    range: { from: unknown; to: unknown; order?: unknown; limit?: unknown; status?: unknown },
  ): Promise<FeedPage> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const from = checkSeq(range.from, 'from', 0);
    const to = checkSeq(range.to, 'to', 0);
    if (to < from) {
      throw new InvalidRangeError('from', `from (${from}) must not be greater than to (${to})`);
    }
    const order = range.order ?? 'desc';
    if (order !== 'asc' && order !== 'desc') {
      throw new BadRequestError('order', 'order must be asc or desc');
    }
    const limit =
      range.limit === undefined || range.limit === null
        ? this.deps.settings.maxLimit
        : this.checkLimit(range.limit);
    const status = checkStatus(range.status);
    return fromStore(fetchRange(this.views, { uid: user, from, to, order, limit, status }));
  }

  async stats(principal: Principal, uid: unknown): Promise<UserStats> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    return fromStore(getStats(this.views, user));
  }

  async readStates(
    principal: Principal,
    uid: unknown,
    upTo: unknown,
    format: unknown,
    state?: unknown,
  ): Promise<ReadStates> {
    const user = checkUid(uid);
    authorizeUid(principal, user);
    const top = upTo === undefined || upTo === null ? undefined : checkSeq(upTo, 'upTo', 0);
    const fmt = (format ?? 'roaring') as ReadStatesFormat;
    if (fmt !== 'roaring' && fmt !== 'blocks' && fmt !== 'compact') {
      throw new BadRequestError('format', 'format must be roaring, blocks or compact');
    }
    return fromStore(
      getReadStates(this.views, {
        uid: user,
        ...(top === undefined ? {} : { upTo: top }),
        format: fmt,
        state: checkState(state),
      }),
    );
  }
}
