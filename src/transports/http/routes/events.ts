import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { MiniPushService } from '../../../service.js';
import { StringEnum, Uid, answersWith, errorResponses } from '../schemas.js';

export interface EventsRoutesOptions {
  readonly service: MiniPushService;
}

/** Publishing: business servers (API keys) append events to the write log. */
export const eventsRoutes: FastifyPluginAsyncTypebox<EventsRoutesOptions> = async (
  app,
  { service },
) => {
  app.post(
    '/v1/events',
    {
      schema: {
        summary: 'Publish an event to users',
        description:
          "Appends a publish command to the write log. The id is the idempotency key: an id is delivered at most once per recipient. With wait=true the answer comes once the event is projected, with each recipient's seq.",
        tags: ['commands'],
        querystring: Type.Object({ wait: Type.Optional(Type.Boolean({ default: false })) }),
        body: Type.Object(
          {
            id: Type.Optional(
              Type.String({
                minLength: 1,
                maxLength: 128,
                pattern: '^[\\x21-\\x7e]+$',
                description:
                  'Idempotency key: printable ASCII without spaces; generated when absent',
                ...answersWith('MINIPUSH_INVALID_EVENT'),
              }),
            ),
            to: Type.Array(Uid, {
              minItems: 1,
              description: 'Recipients (duplicates removed)',
              ...answersWith('MINIPUSH_INVALID_UID'),
            }),
            body: Type.Unknown({
              description: 'Any JSON value, at most the configured body limit',
              ...answersWith('MINIPUSH_INVALID_EVENT'),
            }),
            createTime: Type.Optional(
              Type.Integer({
                minimum: 0,
                description: 'ms since the epoch; now when absent',
                ...answersWith('MINIPUSH_INVALID_EVENT'),
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ id: Type.String(), seqs: Type.Record(Type.String(), Type.Integer()) }),
          202: Type.Object({ id: Type.String(), position: Type.String() }),
          ...errorResponses(400, 401, 403, 409, 413, 503, 504),
        },
      },
    },
    async (request, reply) => {
      const result = await service.publish(request.principal, request.body, {
        wait: request.query.wait === true,
      });
      return reply.code('seqs' in result ? 200 : 202).send(result);
    },
  );

  app.get(
    '/v1/events/:id/result',
    {
      schema: {
        summary: 'What became of a publish answered without waiting',
        description:
          'By the id and the position the 202 answer gave: pending (not projected yet), applied, or conflict — the id was published before with another body or sender, whose content stays (message says so).',
        tags: ['commands'],
        params: Type.Object({
          id: Type.String({
            minLength: 1,
            maxLength: 128,
            pattern: '^[\\x21-\\x7e]+$',
            ...answersWith('MINIPUSH_INVALID_EVENT'),
          }),
        }),
        querystring: Type.Object(
          {
            position: Type.String({
              minLength: 3,
              // Room for ~50 partitions' positions, and far below the 16 KiB of a request head.
              maxLength: 1024,
              description: 'The position of the publish answer, <partition>:<offset>,…',
            }),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({
            id: Type.String(),
            position: Type.String(),
            state: StringEnum(['pending', 'applied', 'conflict']),
            message: Type.Optional(Type.String()),
          }),
          ...errorResponses(400, 401, 403, 503),
        },
      },
    },
    async (request) =>
      service.publishResult(request.principal, request.params.id, request.query.position),
  );
};
