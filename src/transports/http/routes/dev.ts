import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { devCredentialsRefusal, mintUserToken } from '../../../auth/dev-credentials.js';
import { Uid, errorResponses } from '../schemas.js';

export interface DevRoutesOptions {
  readonly jwtSecret: string;
}

/**
 * Development only (the embedded default with --dev-tokens): anyone on the host can mint a user
 * token, so the demo page and curl examples work with no identity provider.
 */
export const devRoutes: FastifyPluginAsyncTypebox<DevRoutesOptions> = async (
  app,
  { jwtSecret },
) => {
  app.post(
    '/v1/dev/token',
    {
      schema: {
        summary: 'Mint a user token (development only)',
        tags: ['development'],
        security: [],
        body: Type.Object(
          {
            uid: Uid,
            ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400, default: 3600 })),
          },
          { additionalProperties: false },
        ),
        response: {
          200: Type.Object({ token: Type.String(), expiresIn: Type.Integer() }),
          ...errorResponses(400, 403),
        },
      },
    },
    async (request) => {
      const refusal = devCredentialsRefusal(request.headers);
      if (refusal) throw refusal;
      const ttl = request.body.ttlSeconds ?? 3600;
      return { token: await mintUserToken(jwtSecret, request.body.uid, ttl), expiresIn: ttl };
    },
  );
};
