import type { Authenticator } from '../../auth/authenticator.js';
import {
  BadRequestError,
  ForbiddenError,
  RateLimitedError,
  asClientError,
  type ErrorCode,
} from '../../errors.js';
import type { Hub } from '../../hubs/hub.js';
import type { Session } from '../../hubs/session-registry.js';
import type { Logger } from '../../logger.js';
import type { ReqId } from '../../protocol/websocket.js';
import { feedPageJson, type FeedPage } from '../../queries/feed-event.js';
import type { MiniPushService } from '../../service.js';
import { parseClientMessage, type ClientRequest } from './parse-request.js';

/** Seen by metrics: every WebSocket request answered. */
export interface RequestObserver {
  /** Its type, the time taken, and `ok` or the error code sent. */
  onRequest?(type: string, durationMs: number, outcome: string): void;
}

/** Requests one session may have in flight; more are refused until answers go out. */
export const MAX_IN_FLIGHT = 32;

/** A feed page answer, serialised with its stored bodies spliced in (see feedPageJson). */
class PageAnswer {
  constructor(readonly page: FeedPage) {}
}

/**
 * Answers a session's request frames with the same service calls REST and gRPC make, so
 * authorisation, validation and errors are the same on every transport.
 */
export class WebSocketRequests {
  private readonly log: Logger;

  constructor(
    private readonly hub: Hub,
    private readonly service: MiniPushService,
    private readonly authenticator: Authenticator,
    logger: Logger,
    private readonly observer?: RequestObserver,
  ) {
    this.log = logger.child({ component: 'ws' });
  }

  /** Handles one text frame of a session. */
  onMessage(session: Session, text: string): void {
    // Nothing more is answered on an expired token, though the keep-alive tick is still to come.
    if (this.hub.expireIfDue(session)) return;
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      this.hub.send(session, {
        type: 'error',
        reqId: parsed.reqId,
        code: parsed.code,
        message: parsed.message,
      });
      return;
    }
    const { request } = parsed;
    if (request.type === 'ping') {
      this.hub.send(session, { type: 'pong', reqId: request.reqId });
      return;
    }
    if (session.inFlight >= MAX_IN_FLIGHT) {
      this.replyError(
        session,
        request.reqId,
        new RateLimitedError(`at most ${MAX_IN_FLIGHT} requests may be in flight per session`),
      );
      return;
    }
    session.inFlight++;
    const started = performance.now();
    let outcome = 'ok';
    this.handle(session, request)
      .then(
        (payload) =>
          this.hub.send(
            session,
            payload instanceof PageAnswer
              ? feedPageJson(
                  payload.page,
                  `"type":${JSON.stringify(request.type)},"reqId":${JSON.stringify(request.reqId)},`,
                )
              : { type: request.type, reqId: request.reqId, ...payload },
          ),
        (err: unknown) => {
          outcome = this.replyError(session, request.reqId, err);
        },
      )
      .finally(() => {
        session.inFlight--;
        this.observer?.onRequest?.(request.type, performance.now() - started, outcome);
      });
  }

  /** Answers a failed request with its error; returns the code sent. */
  private replyError(session: Session, reqId: ReqId | null, err: unknown): ErrorCode {
    const error = asClientError(err);
    if (error.code === 'MINIPUSH_INTERNAL') this.log.error({ err }, 'WebSocket request failed');
    this.hub.send(session, { type: 'error', reqId, code: error.code, message: error.message });
    return error.code;
  }

  /** Swaps in a new token of the same user, so the session outlives the old one's expiry. */
  private async refresh(session: Session, token: unknown): Promise<object> {
    if (typeof token !== 'string' || token === '') {
      throw new BadRequestError('token', 'refresh needs token: a new user JWT for this uid');
    }
    const principal = await this.authenticator.authenticateToken(token, { remember: false });
    if (principal.kind !== 'user') {
      throw new ForbiddenError('refresh needs a user JWT, not an API key');
    }
    if (principal.uid !== session.uid) {
      throw new ForbiddenError(
        `the new token is for uid ${principal.uid}; this session is for uid ${session.uid}`,
      );
    }
    session.principal = principal;
    return { tokenExpiresAt: principal.expiresAt ?? null };
  }

  private async handle(session: Session, request: ClientRequest): Promise<object> {
    const { service } = this;
    const f = request.fields;
    const who = session.principal;
    const uid = session.uid;
    switch (request.type) {
      case 'diff':
        return new PageAnswer(await service.diff(who, uid, f.after ?? 0, f.limit, f.status));
      case 'fetch':
        return new PageAnswer(
          await service.fetch(who, uid, {
            from: f.from,
            to: f.to,
            order: f.order,
            limit: f.limit,
            status: f.status,
          }),
        );
      case 'stats':
        return service.stats(who, uid);
      case 'readStates':
        return service.readStates(who, uid, f.upTo, f.format ?? 'roaring', f.state);
      case 'markRead':
        // Read-your-writes: answer once projected, so the client's next read sees the change.
        return service.markRead(
          who,
          uid,
          { seqs: f.seqs, upTo: f.upTo },
          { wait: f.wait !== false },
        );
      case 'markUnread':
        return service.markUnread(who, uid, { seqs: f.seqs }, { wait: f.wait !== false });
      case 'markSeen':
        return service.markSeen(
          who,
          uid,
          { seqs: f.seqs, upTo: f.upTo },
          { wait: f.wait !== false },
        );
      case 'archive':
        return service.archive(
          who,
          uid,
          { seqs: f.seqs, upTo: f.upTo },
          { wait: f.wait !== false },
        );
      case 'unarchive':
        return service.unarchive(
          who,
          uid,
          { seqs: f.seqs, upTo: f.upTo },
          { wait: f.wait !== false },
        );
      case 'send':
        return service.sendMessage(who, { to: f.to, body: f.body });
      case 'refresh':
        return this.refresh(session, f.token);
      case 'ping':
        return {};
      default: {
        const unreachable: never = request.type;
        throw new BadRequestError('type', `unknown message type ${String(unreachable)}`);
      }
    }
  }
}
