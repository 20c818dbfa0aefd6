import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { BadRequestError, InvalidRangeError } from '../../../errors.js';
import type { MiniPushService } from '../../../service.js';
import {
  Accepted,
  Seq,
  SeqOrZero,
  Seqs,
  StringEnum,
  UidParams,
  answersWith,
  errorResponses,
} from '../schemas.js';
import { feedPageJson, type FeedPage } from '../../../queries/feed-event.js';
import { INBOX_STATES, STATUS_FILTERS } from '../../../domain/inbox-state.js';
import type { MarkTarget } from '../../../commands/command-record.js';
import type { Principal } from '../../../auth/authenticator.js';
import type { MarkResult } from '../../../service.js';

export interface UsersRoutesOptions {
  readonly service: MiniPushService;
  readonly maxLimit: number;
}

/** The path uid; the schema already made it an unsigned 32-bit integer. */
function uidOf(params: { uid: number }): number {
  return params.uid;
}

const Status = StringEnum(STATUS_FILTERS, {
  description:
    'Which events: unarchived (default, the inbox), all, unread or unseen (both unarchived), archived',
});

/** A user's feed: diff, range fetch, stats, read states, and read, seen and archive marks. */
export const usersRoutes: FastifyPluginAsyncTypebox<UsersRoutesOptions> = async (
  app,
  { service, maxLimit },
) => {
  const Limit = Type.Integer({
    minimum: 1,
    maximum: maxLimit,
    description: `Page size, at most ${maxLimit}`,
    ...answersWith({ maximum: 'MINIPUSH_LIMIT_TOO_LARGE' }),
  });

  app.get(
    '/v1/users/:uid/events',
    {
      schema: {
        summary: "Diff or fetch a user's events",
        description:
          'With after (or nothing): the events after that seq, oldest first (diff). With from and to: the events in that inclusive seq range, newest first unless order=asc (range fetch). status filters both (default unarchived); more and the next after/to follow the filtered events.',
        tags: ['queries'],
        params: UidParams,
        querystring: Type.Object(
          {
            after: Type.Optional(SeqOrZero),
            limit: Type.Optional(Limit),
            from: Type.Optional(SeqOrZero),
            to: Type.Optional(SeqOrZero),
            order: Type.Optional(StringEnum(['asc', 'desc'])),
            status: Type.Optional(Status),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref('FeedPage'), ...errorResponses(400, 401, 403) },
      },
    },
    async (request, reply) => {
      const uid = uidOf(request.params);
      const { after, limit, from, to, order, status } = request.query;
      // The page's JSON is built with the stored bodies spliced in; it has the FeedPage shape.
      const send = (page: FeedPage) =>
        reply.type('application/json; charset=utf-8').send(feedPageJson(page));
      if (from !== undefined || to !== undefined) {
        if (from === undefined || to === undefined) {
          throw new InvalidRangeError(
            from === undefined ? 'from' : 'to',
            'a range fetch needs both from and to',
          );
        }
        if (after !== undefined) {
          throw new BadRequestError('after', 'give after (diff) or from/to (range), not both');
        }
        return send(
          await service.fetch(request.principal, uid, { from, to, order, limit, status }),
        );
      }
      if (order !== undefined) {
        throw new BadRequestError('order', 'order applies to range fetches (from/to) only');
      }
      return send(await service.diff(request.principal, uid, after ?? 0, limit, status));
    },
  );

  app.get(
    '/v1/users/:uid/stats',
    {
      schema: {
        summary: 'Head, floor, and unread, unseen and archived counts',
        tags: ['queries'],
        params: UidParams,
        response: { 200: Type.Ref('Stats'), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => service.stats(request.principal, uidOf(request.params)),
  );

  app.get(
    '/v1/users/:uid/read-states',
    {
      schema: {
        summary: 'Which stored seqs are read (or seen, or archived)',
        description:
          "state=read (default), seen or archived: which state the bits say. format=roaring (default): a base64 portable roaring bitmap of those seqs in [floorSeq, upTo]. format=blocks: the seed's block format for old clients. format=compact: base64 of the smallest of a bitset, roaring, or a list of the unread or read seqs (docs/api.md).",
        tags: ['queries'],
        params: UidParams,
        querystring: Type.Object(
          {
            upTo: Type.Optional(SeqOrZero),
            format: Type.Optional(StringEnum(['roaring', 'blocks', 'compact'])),
            state: Type.Optional(StringEnum(INBOX_STATES)),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Ref('ReadStates'), ...errorResponses(400, 401, 403) },
      },
    },
    async (request) =>
      service.readStates(
        request.principal,
        uidOf(request.params),
        request.query.upTo,
        request.query.format ?? 'roaring',
        request.query.state,
      ),
  );

  const Wait = Type.Object({ wait: Type.Optional(Type.Boolean({ default: false })) });
  const markResponses = {
    200: Type.Object({ changed: Type.Integer({ description: 'Seqs whose state flipped' }) }),
    202: Accepted,
    ...errorResponses(400, 401, 403, 503, 504),
  };

  app.post(
    '/v1/users/:uid/read',
    {
      schema: {
        summary: 'Mark seqs read, or all read up to a seq',
        tags: ['commands'],
        params: UidParams,
        querystring: Wait,
        body: Type.Object(
          {
            seqs: Type.Optional(Seqs),
            upTo: Type.Optional(Seq),
          },
          { additionalProperties: false },
        ),
        response: markResponses,
      },
    },
    async (request, reply) => {
      const result = await service.markRead(
        request.principal,
        uidOf(request.params),
        request.body,
        { wait: request.query.wait === true },
      );
      return reply.code('changed' in result ? 200 : 202).send(result);
    },
  );

  app.post(
    '/v1/users/:uid/unread',
    {
      schema: {
        summary: 'Mark seqs unread',
        tags: ['commands'],
        params: UidParams,
        querystring: Wait,
        body: Type.Object({ seqs: Seqs }, { additionalProperties: false }),
        response: markResponses,
      },
    },
    async (request, reply) => {
      const result = await service.markUnread(
        request.principal,
        uidOf(request.params),
        request.body,
        { wait: request.query.wait === true },
      );
      return reply.code('changed' in result ? 200 : 202).send(result);
    },
  );
  /** Seen, archive and unarchive marks: a list of seqs or every stored seq up to one. */
  const stateMarks: ReadonlyArray<{
    readonly path: string;
    readonly summary: string;
    readonly mark: (
      principal: Principal,
      uid: number,
      target: MarkTarget,
      options: { wait: boolean },
    ) => Promise<MarkResult>;
  }> = [
    {
      path: '/v1/users/:uid/seen',
      summary: 'Mark seqs seen, or all seen up to a seq (opening the inbox)',
      mark: (...args) => service.markSeen(...args),
    },
    {
      path: '/v1/users/:uid/archive',
      summary: 'Archive seqs, or all up to a seq',
      mark: (...args) => service.archive(...args),
    },
    {
      path: '/v1/users/:uid/unarchive',
      summary: 'Unarchive seqs, or all up to a seq',
      mark: (...args) => service.unarchive(...args),
    },
  ];
  for (const { path, summary, mark } of stateMarks) {
    app.post(
      path,
      {
        schema: {
          summary,
          tags: ['commands'],
          params: UidParams,
          querystring: Wait,
          body: Type.Object(
            { seqs: Type.Optional(Seqs), upTo: Type.Optional(Seq) },
            { additionalProperties: false },
          ),
          response: markResponses,
        },
      },
      async (request, reply) => {
        const result = await mark(request.principal, uidOf(request.params), request.body, {
          wait: request.query.wait === true,
        });
        return reply.code('changed' in result ? 200 : 202).send(result);
      },
    );
  }
};
