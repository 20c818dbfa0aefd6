import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import type { Authenticator, Principal } from '../../auth/authenticator.js';
import { InvalidEventError, asClientError, type MiniPushError } from '../../errors.js';
import type { Logger } from '../../logger.js';
import type { FeedPage } from '../../queries/feed-event.js';
import type { MarkTarget } from '../../commands/command-record.js';
import type { MarkResult, MiniPushService } from '../../service.js';
import { packageRoot } from '../../version.js';

/** Where the .proto files live, from both src/ (tests) and dist/src/ (built). */
export function protoRoot(): string {
  return path.join(packageRoot(), 'proto');
}

export const PROTO_FILE = 'minipush/v1/minipush.proto';

export function loadPackageDefinition(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [protoRoot()],
    keepCase: false,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
}

interface DiffRequest {
  uid: number;
  after: number;
  limit: number;
  status?: string;
}
interface FetchRequest {
  uid: number;
  from: number;
  to: number;
  order: 'ORDER_DESC' | 'ORDER_ASC';
  limit: number;
  status?: string;
}
interface UidRequest {
  uid: number;
}
interface ReadStatesRequest {
  uid: number;
  upTo?: number;
  format: 'READ_STATES_FORMAT_ROARING' | 'READ_STATES_FORMAT_BLOCKS' | 'READ_STATES_FORMAT_COMPACT';
  state?: string;
}
interface PublishResultRequest {
  id: string;
  position: string;
}
interface PublishRequest {
  id: string;
  to: number[];
  bodyJson: string;
  createTime?: number;
  wait: boolean;
}
/** MarkReadRequest and MarkStateRequest. */
interface MarkReadRequest {
  uid: number;
  seqs: number[];
  upTo?: number;
  wait: boolean;
}
interface MarkUnreadRequest {
  uid: number;
  seqs: number[];
  wait: boolean;
}

function toGrpcError(
  err: unknown,
  log: Logger,
  onClientError?: (error: MiniPushError) => void,
): Partial<grpc.StatusObject> {
  const error = asClientError(err);
  onClientError?.(error);
  if (error.code === 'MINIPUSH_INTERNAL') log.error({ err }, 'gRPC call failed');
  const metadata = new grpc.Metadata();
  metadata.set('minipush-error-code', error.code);
  return { code: error.grpcStatus, details: error.message, metadata };
}

/** `STATUS_FILTER_UNREAD` → `unread`; the default, 0, is the inbox view. */
function statusOf(status: string | undefined): string {
  return (status ?? 'STATUS_FILTER_UNARCHIVED').replace('STATUS_FILTER_', '').toLowerCase();
}

function markAnswer(result: MarkResult) {
  return 'changed' in result
    ? { position: '', changed: result.changed }
    : { position: result.position };
}

/** The seqs or up_to of a mark request, as the service takes them. */
function markTarget(req: MarkReadRequest): MarkTarget {
  return req.upTo !== undefined
    ? { upTo: req.upTo }
    : { seqs: req.seqs.length > 0 ? req.seqs : undefined };
}

function feedPage(page: FeedPage) {
  return {
    headSeq: page.headSeq,
    floorSeq: page.floorSeq,
    more: page.more,
    reset: page.reset,
    events: page.events.map((e) => ({
      seq: e.seq,
      createTime: e.createTime,
      bodyJson: e.bodyJson,
      read: e.read,
      seen: e.seen,
      archived: e.archived,
    })),
  };
}

export interface GrpcServerOptions {
  readonly service: MiniPushService;
  readonly authenticator: Authenticator;
  readonly logger: Logger;
  /** Hears every error answer, in the call's context (tracing records its code). */
  readonly onClientError?: (error: MiniPushError) => void;
  /** Run around every call, such as the metrics' timer. */
  readonly interceptors?: grpc.ServerInterceptor[];
}

/** The gRPC transport: the same service as REST, behind QueryService and CommandService. */
export function createGrpcServer(options: GrpcServerOptions): grpc.Server {
  const { service, authenticator } = options;
  const log = options.logger.child({ component: 'grpc' });
  const definition = loadPackageDefinition();
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    minipush: { v1: Record<string, grpc.ServiceClientConstructor> };
  };
  const v1 = loaded.minipush.v1;

  // One wrapper for every method: authenticate from metadata, run, map errors.
  function unary<Req, Res>(
    handler: (principal: Principal, request: Req) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const auth = call.metadata.get('authorization')[0];
      authenticator
        .authenticate(typeof auth === 'string' ? auth : auth?.toString())
        .then((principal) => handler(principal, call.request))
        .then(
          (result) => callback(null, result),
          (err: unknown) => callback(toGrpcError(err, log, options.onClientError)),
        );
    };
  }

  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    ...(options.interceptors ? { interceptors: options.interceptors } : {}),
  });
  server.addService(v1.QueryService!.service, {
    Diff: unary<DiffRequest, unknown>(async (principal, req) =>
      feedPage(
        await service.diff(
          principal,
          req.uid,
          req.after,
          req.limit === 0 ? undefined : req.limit,
          statusOf(req.status),
        ),
      ),
    ),
    Fetch: unary<FetchRequest, unknown>(async (principal, req) =>
      feedPage(
        await service.fetch(principal, req.uid, {
          from: req.from,
          to: req.to,
          order: req.order === 'ORDER_ASC' ? 'asc' : 'desc',
          limit: req.limit === 0 ? undefined : req.limit,
          status: statusOf(req.status),
        }),
      ),
    ),
    GetStats: unary<UidRequest, unknown>((principal, req) => service.stats(principal, req.uid)),
    GetReadStates: unary<ReadStatesRequest, unknown>(async (principal, req) => {
      const format =
        req.format === 'READ_STATES_FORMAT_BLOCKS'
          ? 'blocks'
          : req.format === 'READ_STATES_FORMAT_COMPACT'
            ? 'compact'
            : 'roaring';
      const state = (req.state ?? 'INBOX_STATE_READ').replace('INBOX_STATE_', '').toLowerCase();
      const states = await service.readStates(principal, req.uid, req.upTo, format, state);
      return {
        headSeq: states.headSeq,
        floorSeq: states.floorSeq,
        roaring: 'bitmap' in states ? Buffer.from(states.bitmap, 'base64') : Buffer.alloc(0),
        blocks:
          'blocks' in states
            ? states.blocks.map((b) => ({
                seq: b.seq,
                len: b.len,
                bits: Buffer.from(b.base64, 'base64'),
              }))
            : [],
        compact: 'compact' in states ? Buffer.from(states.compact, 'base64') : Buffer.alloc(0),
      };
    }),
    GetPublishResult: unary<PublishResultRequest, unknown>(async (principal, req) => {
      const result = await service.publishResult(principal, req.id, req.position);
      return {
        id: result.id,
        position: result.position,
        state: `PUBLISH_STATE_${result.state.toUpperCase()}`,
        message: result.message ?? '',
      };
    }),
  });
  server.addService(v1.CommandService!.service, {
    Publish: unary<PublishRequest, unknown>(async (principal, req) => {
      let body: unknown;
      try {
        body = JSON.parse(req.bodyJson);
      } catch {
        throw new InvalidEventError('body_json', 'body_json must be JSON text');
      }
      const result = await service.publish(
        principal,
        { id: req.id === '' ? undefined : req.id, to: req.to, body, createTime: req.createTime },
        { wait: req.wait },
      );
      return 'seqs' in result
        ? {
            id: result.id,
            position: '',
            seqs: Object.entries(result.seqs).map(([uid, seq]) => ({ uid: Number(uid), seq })),
          }
        : { id: result.id, position: result.position, seqs: [] };
    }),
    MarkRead: unary<MarkReadRequest, unknown>(async (principal, req) =>
      markAnswer(await service.markRead(principal, req.uid, markTarget(req), { wait: req.wait })),
    ),
    MarkUnread: unary<MarkUnreadRequest, unknown>(async (principal, req) => {
      const result = await service.markUnread(
        principal,
        req.uid,
        { seqs: req.seqs.length > 0 ? req.seqs : undefined },
        { wait: req.wait },
      );
      return markAnswer(result);
    }),
    MarkSeen: unary<MarkReadRequest, unknown>(async (principal, req) =>
      markAnswer(await service.markSeen(principal, req.uid, markTarget(req), { wait: req.wait })),
    ),
    Archive: unary<MarkReadRequest, unknown>(async (principal, req) =>
      markAnswer(await service.archive(principal, req.uid, markTarget(req), { wait: req.wait })),
    ),
    Unarchive: unary<MarkReadRequest, unknown>(async (principal, req) =>
      markAnswer(await service.unarchive(principal, req.uid, markTarget(req), { wait: req.wait })),
    ),
  });
  new ReflectionService(definition).addToServer(server);
  return server;
}

/** Binds and starts; resolves with the bound port. */
export function listenGrpc(server: grpc.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
}

/** Stops taking calls, lets running ones finish for a while, then forces the rest. */
export function closeGrpc(server: grpc.Server, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
