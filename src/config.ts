import { parseArgs } from 'node:util';
import os from 'node:os';
import path from 'node:path';

/** The processes' jobs; `minipush serve` runs all of them unless told otherwise. */
export const ROLES = ['api', 'hub', 'projector', 'cleaner'] as const;
export type Role = (typeof ROLES)[number];

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

type Kind =
  'string' | 'int' | 'workers' | 'bool' | 'duration' | 'bytes' | 'list' | 'roles' | 'level';

/**
 * One setting: how it is named in the environment and on the command line, its default (as it
 * would be written there), what it means, and its range. `T` is the type of its parsed value.
 */
export interface Setting<T = unknown> {
  readonly kind: Kind;
  readonly env: string;
  readonly flag: string;
  readonly default: string;
  readonly doc: string;
  readonly min?: number;
  readonly max?: number;
  readonly secret?: boolean;
  /** Never set: carries the value type. */
  readonly value?: T;
}

interface Extra {
  readonly min?: number;
  readonly max?: number;
  readonly secret?: boolean;
}

function setting<T>(
  kind: Kind,
  name: string,
  defaultValue: string,
  doc: string,
  extra: Extra = {},
): Setting<T> {
  return {
    kind,
    env: `MINIPUSH_${name.replace(/-/g, '_').toUpperCase()}`,
    flag: name,
    default: defaultValue,
    doc,
    ...extra,
  };
}

const text = (name: string, def: string, doc: string, extra?: Extra) =>
  setting<string>('string', name, def, doc, extra);
const int = (name: string, def: string, doc: string, extra?: Extra) =>
  setting<number>('int', name, def, doc, extra);
/** Milliseconds, written with a unit (`10s`, `30d`). */
const duration = (name: string, def: string, doc: string, extra?: Extra) =>
  setting<number>('duration', name, def, doc, extra);
/** Bytes, written with a unit (`4KiB`). */
const bytes = (name: string, def: string, doc: string, extra?: Extra) =>
  setting<number>('bytes', name, def, doc, extra);
const bool = (name: string, def: string, doc: string) => setting<boolean>('bool', name, def, doc);
const list = (name: string, def: string, doc: string, extra?: Extra) =>
  setting<readonly string[]>('list', name, def, doc, extra);

const PORT = { min: 0, max: 65535 };

/**
 * Every setting, in the order `--help` shows them: the one source of the configuration's type,
 * defaults, `--help`, and the settings table of docs/configuration.md. Durations are in ms and
 * sizes in bytes once parsed.
 */
export const SETTINGS = {
  dataDir: text('data-dir', './data', 'folder of the embedded SQLite store and log'),
  kafkaBrokers: list(
    'kafka-brokers',
    '',
    'Kafka bootstrap brokers, host:port,…; empty = embedded log',
  ),
  kafkaClientId: text('kafka-client-id', 'minipush', 'Kafka client id'),
  kafkaSessionTimeoutMs: duration(
    'kafka-session-timeout',
    '10s',
    "a dead projector's partitions move to the others after this",
    { min: 6000, max: 1_800_000 },
  ),
  kafkaRetries: int(
    'kafka-retries',
    '10',
    'retries of a failed Kafka request (backoff from 100 ms doubling to 5 s) before it fails',
    { min: 0, max: 100 },
  ),
  mysqlUrl: text('mysql-url', '', 'mysql://user:pass@host:port/db; empty = SQLite in data-dir', {
    secret: true,
  }),
  mysqlPoolSize: int('mysql-pool-size', '10', 'SQL connection pool size', {
    min: 1,
    max: 1000,
  }),
  topicPrefix: text(
    'topic-prefix',
    'minipush',
    'prefix of topic names (<prefix>.commands, .heads, .dlq, .sessions)',
  ),
  partitions: int('partitions', '8', 'partitions of the commands topic (fixed once created)', {
    min: 1,
    max: 1024,
  }),
  replicationFactor: int('replication-factor', '1', 'replication factor of created topics', {
    min: 1,
    max: 16,
  }),
  logRetentionMs: duration(
    'log-retention',
    '-1',
    'retention of the commands log; -1 = forever (exact rebuilds)',
    { min: -1 },
  ),
  roles: setting<readonly Role[]>(
    'roles',
    'roles',
    ROLES.join(','),
    `roles this process runs: ${ROLES.join(',')}`,
  ),
  host: text('host', '127.0.0.1', 'interface to listen on (0.0.0.0 for all)'),
  httpPort: int('http-port', '8080', 'REST + WebSocket port; 0 = any free port', PORT),
  grpcPort: int('grpc-port', '9090', 'gRPC port; 0 = any free port, -1 = off', {
    min: -1,
    max: 65535,
  }),
  eventTtlMs: duration('event-ttl', '30d', 'events older than this are deleted', {
    min: 1000,
  }),
  bodyLimitBytes: bytes('body-limit', '4KiB', 'largest event body (serialised JSON)', {
    min: 2,
    max: 16 * 1024 * 1024,
  }),
  maxRecipients: int('max-recipients', '10000', 'most recipients of one event', {
    min: 1,
    max: 1_000_000,
  }),
  maxEventIdLength: int('max-event-id-length', '128', 'longest event id', {
    min: 8,
    max: 128,
  }),
  maxSeqsPerCommand: int('max-seqs-per-command', '10000', 'most seqs in one read/unread command', {
    min: 1,
    max: 1_000_000,
  }),
  defaultLimit: int('default-limit', '100', 'diff page size when none is given', {
    min: 1,
    max: 100_000,
  }),
  maxLimit: int('max-limit', '1000', 'largest diff/fetch page', {
    min: 1,
    max: 100_000,
  }),
  waitTimeoutMs: duration('wait-timeout', '10s', 'how long ?wait=true waits for the projection', {
    min: 1,
  }),
  readCacheBytes: bytes(
    'read-cache',
    '64MiB',
    'memory for the read cache of users and events (api and hub roles); 0 turns it off',
    { min: 0 },
  ),
  readCacheWaitMs: duration(
    'read-cache-wait',
    '50ms',
    'how long a query waits for the heads stream to catch up before it reads the store',
    { min: 0, max: 10_000 },
  ),
  projectorCacheBytes: bytes(
    'projector-cache',
    '32MiB',
    'memory for the rows of the users a projector owns, so a batch reads only users it has not seen (projector role); 0 reads every user',
    { min: 0 },
  ),
  sessionQuota: int('session-quota', '5', 'live WebSocket sessions per user across all hubs', {
    min: 1,
    max: 1000,
  }),
  maxSessionsPerHub: int(
    'max-sessions-per-hub',
    '19000',
    'most WebSocket sessions one hub process holds',
    { min: 1 },
  ),
  hubWorkers: setting<number>(
    'workers',
    'hub-workers',
    '1',
    'hub worker processes behind the one HTTP port (roles api,hub only, Kafka + MySQL); auto = one per core',
    { min: 1, max: 256 },
  ),
  maxConnectionsPerIp: int(
    'max-connections-per-ip',
    '200',
    'most concurrent WebSockets from one IP; 0 = no limit',
    { min: 0 },
  ),
  nudgeWindowMs: duration('nudge-window', '50ms', 'at most one nudge per user per window', {
    min: 0,
    max: 60_000,
  }),
  pingIntervalMs: duration('ping-interval', '25s', 'WebSocket ping interval', {
    min: 10,
  }),
  pongTimeoutMs: duration('pong-timeout', '10s', 'close a session whose pong is this late', {
    min: 10,
  }),
  wsMaxMessageBytes: bytes('ws-max-message', '64KiB', 'largest WebSocket message from a client', {
    min: 128,
  }),
  wsMaxBufferedBytes: bytes(
    'ws-max-buffered',
    '1MiB',
    'close a session whose unsent buffer exceeds this',
    { min: 1024 },
  ),
  wsAllowedOrigins: list(
    'ws-allowed-origins',
    '',
    'allowed WebSocket Origin values; empty = those of cors-origins, or any when that is empty too',
  ),
  trustProxy: list(
    'trust-proxy',
    '',
    'addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client (per-IP limits, logs); empty = none',
  ),
  corsOrigins: list(
    'cors-origins',
    '',
    'origins whose browser pages may call the REST API (CORS), e.g. https://app.example.com, or *; empty = CORS off',
  ),
  hubHeartbeatMs: duration('hub-heartbeat', '2s', 'how often a hub announces it is alive', {
    min: 10,
  }),
  hubTimeoutMs: duration('hub-timeout', '10s', "a silent hub's sessions stop counting after this", {
    min: 20,
  }),
  e2eEnabled: bool('e2e-enabled', 'false', 'let users send messages to other users over WebSocket'),
  e2eMaxBodyBytes: bytes('e2e-max-body', '1KiB', 'largest end-to-end message body', {
    min: 2,
  }),
  e2eRatePerMinute: int('e2e-rate-per-minute', '60', 'end-to-end messages per user per minute', {
    min: 1,
  }),
  apiKeys: list('api-keys', '', 'API keys of business servers, comma-separated', {
    secret: true,
  }),
  jwtSecret: text('jwt-secret', '', 'HS256 secret of user JWTs', { secret: true }),
  jwtPublicKey: text('jwt-public-key', '', 'PEM public key of user JWTs (RS256, ES256, EdDSA)'),
  jwtJwksUrl: text('jwt-jwks-url', '', 'JWKS URL of user JWTs'),
  jwtIssuer: text('jwt-issuer', '', 'required iss claim of user JWTs'),
  jwtAudience: text('jwt-audience', '', 'required aud claim of user JWTs'),
  cleanerIntervalMs: duration('cleaner-interval', '1m', 'how often the TTL cleaner runs', {
    min: 10,
  }),
  cleanerBatchSize: int('cleaner-batch-size', '1000', 'rows the cleaner deletes per statement', {
    min: 1,
    max: 100_000,
  }),
  demoEnabled: bool('demo', 'true', 'serve the demo inbox page at /demo'),
  devTokens: bool(
    'dev-tokens',
    'true',
    'mint user tokens at /v1/dev/token (embedded default only)',
  ),
  logLevel: setting<LogLevel>('level', 'log-level', 'info', `log level: ${LOG_LEVELS.join(', ')}`),
  shutdownTimeoutMs: duration('shutdown-timeout', '15s', 'graceful shutdown deadline', {
    min: 100,
  }),
};

type ValueOf<S> = S extends Setting<infer T> ? T : never;

/**
 * The whole validated configuration, typed from {@link SETTINGS}: each field is the parsed value
 * of the setting of the same name, whose `doc`, unit and default `--help` prints and
 * docs/configuration.md lists.
 */
export type Config = { readonly [K in keyof typeof SETTINGS]: ValueOf<(typeof SETTINGS)[K]> };

/** Thrown for a setting that cannot be used; the message names the setting and what it accepts. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
const BYTE_UNITS: Record<string, number> = {
  b: 1,
  kib: 1024,
  kb: 1000,
  mib: 1024 ** 2,
  mb: 1000 ** 2,
};

function describe(key: keyof Config): string {
  const s = SETTINGS[key];
  return `${s.env} / --${s.flag}`;
}

function parseNumber(key: keyof Config, raw: string, units: Record<string, number> | null): number {
  const s = SETTINGS[key];
  const trimmed = raw.trim().toLowerCase();
  const match = /^(-?\d+(?:\.\d+)?)([a-z]*)$/.exec(trimmed);
  const accepted =
    units === null
      ? 'an integer'
      : `a number with a unit (${Object.keys(units).join(', ')}), e.g. ${s.default}`;
  if (!match) {
    throw new ConfigError(`${describe(key)}: "${raw}" is not ${accepted}`);
  }
  const [, digits = '', unit = ''] = match;
  let value: number;
  if (units === null) {
    if (unit !== '' || digits.includes('.')) {
      throw new ConfigError(`${describe(key)}: "${raw}" is not ${accepted}`);
    }
    value = Number(digits);
  } else {
    const factor = unit === '' ? 1 : units[unit];
    if (factor === undefined) {
      throw new ConfigError(`${describe(key)}: unknown unit "${unit}"; use ${accepted}`);
    }
    value = Math.round(Number(digits) * factor);
  }
  if (!Number.isSafeInteger(value)) {
    throw new ConfigError(`${describe(key)}: "${raw}" is out of range`);
  }
  if ((s.min !== undefined && value < s.min) || (s.max !== undefined && value > s.max)) {
    throw new ConfigError(
      `${describe(key)}: ${value} is outside the accepted range ${s.min ?? '-∞'}..${s.max ?? '∞'}`,
    );
  }
  return value;
}

function parseList(raw: string): string[] {
  return raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function parseValue(key: keyof Config, raw: string): unknown {
  const s = SETTINGS[key];
  switch (s.kind) {
    case 'string':
      return raw.trim();
    case 'int':
      return parseNumber(key, raw, null);
    case 'workers':
      return raw.trim().toLowerCase() === 'auto'
        ? os.availableParallelism()
        : parseNumber(key, raw, null);
    case 'duration':
      return parseNumber(key, raw, DURATION_UNITS);
    case 'bytes':
      return parseNumber(key, raw, BYTE_UNITS);
    case 'bool': {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 'yes', 'on'].includes(v)) return true;
      if (['false', '0', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${describe(key)}: "${raw}" is not a boolean (true/false)`);
    }
    case 'list':
      return parseList(raw);
    case 'roles': {
      const roles = parseList(raw);
      if (roles.length === 0) {
        throw new ConfigError(`${describe(key)}: give at least one of ${ROLES.join(', ')}`);
      }
      for (const role of roles) {
        if (!(ROLES as readonly string[]).includes(role)) {
          throw new ConfigError(
            `${describe(key)}: unknown role "${role}"; accepted: ${ROLES.join(', ')}`,
          );
        }
      }
      return [...new Set(roles)];
    }
    case 'level': {
      const v = raw.trim().toLowerCase();
      if (!(LOG_LEVELS as readonly string[]).includes(v)) {
        throw new ConfigError(`${describe(key)}: "${raw}" is not one of ${LOG_LEVELS.join(', ')}`);
      }
      return v;
    }
  }
}

const KEYS = Object.keys(SETTINGS) as (keyof Config)[];

export interface ConfigSources {
  /** Environment variables; only `MINIPUSH_*` ones are read. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Command-line flags after the subcommand, e.g. `['--http-port', '0']`. */
  readonly argv?: readonly string[];
  /** Values that win over both, for tests and embedding. */
  readonly overrides?: Partial<Config>;
}

/**
 * `--flag value` as `--flag=value`: every setting takes a value, and Node's parser otherwise
 * calls a value that starts with a dash (`--grpc-port -1`) ambiguous.
 */
function joinFlagValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    if (
      arg.startsWith('--') &&
      !arg.includes('=') &&
      next !== undefined &&
      !next.startsWith('--')
    ) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

/** Reads flags over environment over defaults, validates them, and returns a frozen config. */
export function loadConfig(sources: ConfigSources = {}): Config {
  const env = sources.env ?? {};
  const flagOptions = Object.fromEntries(
    KEYS.map((key) => [SETTINGS[key].flag, { type: 'string' as const }]),
  );
  let flags: Record<string, string | boolean | undefined>;
  try {
    flags = parseArgs({
      args: joinFlagValues(sources.argv ?? []),
      options: flagOptions,
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new ConfigError(`${message}; run "minipush --help" for the settings`);
  }

  const values: Record<string, unknown> = {};
  for (const key of KEYS) {
    const s = SETTINGS[key];
    const flag = flags[s.flag];
    const raw = typeof flag === 'string' ? flag : (env[s.env] ?? s.default);
    values[key] = parseValue(key, raw);
  }
  const config = { ...values, ...sources.overrides } as Config;
  validateTogether(config);
  return Object.freeze({
    ...config,
    dataDir: path.resolve(config.dataDir),
  });
}

function validateTogether(config: Config): void {
  if (config.defaultLimit > config.maxLimit) {
    throw new ConfigError(
      `${describe('defaultLimit')} (${config.defaultLimit}) must not exceed ${describe('maxLimit')} (${config.maxLimit})`,
    );
  }
  if (config.hubTimeoutMs <= config.hubHeartbeatMs) {
    throw new ConfigError(
      `${describe('hubTimeoutMs')} must be longer than ${describe('hubHeartbeatMs')}`,
    );
  }
  if (config.mysqlUrl !== '' && !/^mysql:\/\//.test(config.mysqlUrl)) {
    throw new ConfigError(
      `${describe('mysqlUrl')}: expected mysql://user:password@host:port/database`,
    );
  }
  const jwtSources = [config.jwtSecret, config.jwtPublicKey, config.jwtJwksUrl].filter(
    (v) => v !== '',
  );
  if (jwtSources.length > 1) {
    throw new ConfigError(
      `set only one of ${describe('jwtSecret')}, ${describe('jwtPublicKey')}, ${describe('jwtJwksUrl')}`,
    );
  }
  if (config.hubWorkers > 1) {
    // Workers are whole hubs, each on the session bus and the heads stream: the projector and
    // the cleaner must not be forked with them, and an embedded log is one process's.
    const others = config.roles.filter((role) => role !== 'hub' && role !== 'api');
    if (!config.roles.includes('hub') || others.length > 0) {
      throw new ConfigError(
        `${describe('hubWorkers')} (${config.hubWorkers}) needs ${describe('roles')} to be hub or api,hub; run ${others.join(', ') || 'the other roles'} in another process`,
      );
    }
    if (config.kafkaBrokers.length === 0 || config.mysqlUrl === '') {
      throw new ConfigError(
        `${describe('hubWorkers')} (${config.hubWorkers}) needs Kafka and MySQL (${describe('kafkaBrokers')}, ${describe('mysqlUrl')}): workers share the session quota over Kafka`,
      );
    }
  }
  if (config.jwtSecret !== '' && Buffer.byteLength(config.jwtSecret) < 32) {
    throw new ConfigError(`${describe('jwtSecret')}: use at least 32 bytes for an HS256 secret`);
  }
}

/** The limits every command is validated against (the commands' `CommandLimits`). */
export function commandLimits(
  config: Config,
): Pick<Config, 'bodyLimitBytes' | 'maxRecipients' | 'maxEventIdLength' | 'maxSeqsPerCommand'> {
  return {
    bodyLimitBytes: config.bodyLimitBytes,
    maxRecipients: config.maxRecipients,
    maxEventIdLength: config.maxEventIdLength,
    maxSeqsPerCommand: config.maxSeqsPerCommand,
  };
}

/**
 * The `Origin` values a WebSocket upgrade may carry: the WebSocket's own list, or else the CORS
 * origins (a page allowed to call the API may hold a session); empty allows any.
 */
export function webSocketOrigins(config: Config): readonly string[] {
  if (config.wsAllowedOrigins.length > 0) return config.wsAllowedOrigins;
  return config.corsOrigins.includes('*') ? [] : config.corsOrigins;
}

/** True when the process runs on the embedded log and SQLite store. */
export function isEmbedded(config: Config): boolean {
  return config.kafkaBrokers.length === 0 && config.mysqlUrl === '';
}

/** `minipush --help` text: every setting with its variable, flag and default. */
export function settingsHelp(): string {
  const lines = KEYS.map((key) => {
    const s = SETTINGS[key];
    const def = s.default === '' ? '' : ` (default ${s.default})`;
    return `  --${s.flag.padEnd(24)} ${s.env.padEnd(34)} ${s.doc}${def}`;
  });
  return ['Settings (flag, environment variable, meaning):', ...lines].join('\n');
}

/** The settings table of docs/configuration.md, generated from {@link SETTINGS}. */
export function settingsMarkdown(): string {
  const rows = KEYS.map((key) => {
    const s = SETTINGS[key];
    const def = s.default === '' ? '—' : `\`${s.default}\``;
    return `| \`--${s.flag}\` | \`${s.env}\` | ${def} | ${s.doc.replace(/\|/g, '\\|')} |`;
  });
  return [
    '| flag | environment variable | default | meaning |',
    '| --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** The `MINIPUSH_*` environment that reproduces these config values in another process. */
export function configEnv(values: Partial<Config>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const setting = SETTINGS[name as keyof Config];
    env[setting.env] = Array.isArray(value) ? value.join(',') : String(value);
  }
  return env;
}

/** The settings that put another process on the same deployment: log, store, topics, keys. */
const DEPLOYMENT_SETTINGS = [
  'kafkaBrokers',
  'mysqlUrl',
  'topicPrefix',
  'partitions',
  'apiKeys',
  'jwtSecret',
] as const satisfies ReadonlyArray<keyof Config>;

/**
 * The `MINIPUSH_*` environment of a process joining `config`'s deployment, with `extra`
 * settings of its own.
 */
export function deploymentEnv(config: Config, extra: Partial<Config> = {}): Record<string, string> {
  const shared: Partial<Config> = Object.fromEntries(
    DEPLOYMENT_SETTINGS.map((key) => [key, config[key]]),
  );
  return configEnv({ ...shared, ...extra });
}

/** The config with secrets masked, for logs and `minipush config`. */
export function redacted(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = { ...config };
  for (const key of KEYS) {
    const value = config[key];
    if (
      SETTINGS[key].secret === true &&
      value !== '' &&
      !(Array.isArray(value) && value.length === 0)
    ) {
      out[key] =
        key === 'mysqlUrl' ? String(value).replace(/\/\/([^:@]*):[^@]*@/, '//$1:***@') : '***';
    }
  }
  return out;
}
