import { Type, type SchemaOptions, type TSchema, type TUnsafe } from '@sinclair/typebox';
import { MAX_SEQ, MAX_UID } from '../../domain/uid.js';
import type { InputErrorCode } from '../../errors.js';

/** Route schemas: they validate requests, shape responses (no leaked fields), and feed OpenAPI. */

/**
 * The schema keyword that says which catalogue code a request violating this schema gets: a
 * code, or codes by the failing validation keyword (`default` for the rest). Schemas without
 * one answer MINIPUSH_BAD_REQUEST. OpenAPI keeps `x-` keywords as extensions.
 */
export const ERROR_CODE_KEYWORD = 'x-error-code';

export type ErrorCodeMark = InputErrorCode | { readonly [keyword: string]: InputErrorCode };

/** Schema options that mark a field's violations with `code`. */
export function answersWith(code: ErrorCodeMark): { [ERROR_CODE_KEYWORD]: ErrorCodeMark } {
  return { [ERROR_CODE_KEYWORD]: code };
}

export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      code: Type.String({
        description: 'Stable error code from the catalogue, e.g. MINIPUSH_INVALID_UID',
      }),
      message: Type.String({ description: 'What was wrong, naming the field' }),
    }),
  },
  { $id: 'Error', description: 'Every error answer' },
);

/**
 * One of a few strings, as a JSON-schema `enum`: a wrong value is answered with the accepted
 * ones, which a union of literals cannot say.
 */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: SchemaOptions = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const Uid = Type.Integer({
  minimum: 0,
  maximum: MAX_UID,
  description: 'User id (unsigned 32-bit)',
  ...answersWith('MINIPUSH_INVALID_UID'),
});
export const Seq = Type.Integer({
  minimum: 1,
  maximum: MAX_SEQ,
  description: 'Per-user sequence number',
  ...answersWith('MINIPUSH_INVALID_SEQ'),
});
export const SeqOrZero = Type.Integer({
  minimum: 0,
  maximum: MAX_SEQ,
  ...answersWith('MINIPUSH_INVALID_SEQ'),
});

/** A list of seqs: its own violations (empty, not a list) are seq errors too. */
export const Seqs = Type.Array(Seq, { minItems: 1, ...answersWith('MINIPUSH_INVALID_SEQ') });

export const UidParams = Type.Object({ uid: Uid });

export const FeedEvent = Type.Object(
  {
    seq: Type.Integer(),
    createTime: Type.Integer({ description: 'Creation time, ms since the epoch' }),
    body: Type.Unknown({ description: 'The business payload, any JSON value' }),
    read: Type.Boolean(),
    seen: Type.Boolean({ description: 'Seen (marked seen, or read)' }),
    archived: Type.Boolean({ description: 'Archived: out of the default view' }),
  },
  { $id: 'FeedEvent' },
);

export const FeedPage = Type.Object(
  {
    headSeq: Type.Integer({ description: 'Highest seq of the user (0 when none)' }),
    floorSeq: Type.Integer({ description: 'Lowest seq still stored' }),
    events: Type.Array(Type.Ref(FeedEvent)),
    more: Type.Boolean({ description: 'More events exist past this page' }),
    reset: Type.Boolean({ description: 'Some asked-for events expired: refetch the newest page' }),
  },
  { $id: 'FeedPage' },
);

export const Stats = Type.Object(
  {
    headSeq: Type.Integer(),
    floorSeq: Type.Integer(),
    unreadCount: Type.Integer({ description: 'Unread events, archived ones aside' }),
    unseenCount: Type.Integer({ description: 'Unseen events (the badge), archived ones aside' }),
    archivedCount: Type.Integer({ description: 'Archived events still stored' }),
    readVersion: Type.Integer({
      description: 'Grows with every change of the read, seen or archived state',
    }),
  },
  { $id: 'Stats' },
);

export const ReadBlock = Type.Object({
  seq: Type.Integer({ description: 'Highest seq of the run' }),
  len: Type.Integer({ description: 'Seqs in the run' }),
  base64: Type.String({ description: 'Bit i = seq − i, most significant bit first; 1 = read' }),
});

export const ReadStates = Type.Object(
  {
    headSeq: Type.Integer(),
    floorSeq: Type.Integer(),
    bitmap: Type.Optional(
      Type.String({ description: 'Base64 portable roaring bitmap of the seqs in the state asked' }),
    ),
    blocks: Type.Optional(Type.Array(ReadBlock)),
    compact: Type.Optional(
      Type.String({
        description:
          'Base64: a kind byte (0 bitset, 1 roaring, 2 unread list, 3 read list), then that encoding',
      }),
    ),
  },
  { $id: 'ReadStates' },
);

export const Accepted = Type.Object({
  position: Type.String({ description: 'Log position(s) of the command, <partition>:<offset>,…' }),
});

export function errorResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((status) => [status, Type.Ref(ErrorBody)]));
}

export const SHARED_SCHEMAS = [ErrorBody, FeedEvent, FeedPage, Stats, ReadStates];
