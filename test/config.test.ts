import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redacted, settingsHelp, SETTINGS } from '../src/config.js';

describe('config', () => {
  it('should give the design defaults when nothing is set', () => {
    const config = loadConfig({ env: {} });
    expect(config.eventTtlMs).toBe(30 * 86_400_000);
    expect(config.bodyLimitBytes).toBe(4096);
    expect(config.sessionQuota).toBe(5);
    expect(config.defaultLimit).toBe(100);
    expect(config.httpPort).toBe(8080);
    expect(config.grpcPort).toBe(9090);
    expect(config.roles).toEqual(['api', 'hub', 'projector', 'cleaner']);
    expect(config.kafkaBrokers).toEqual([]);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('should read MINIPUSH_* variables and let flags win over them', () => {
    const config = loadConfig({
      env: { MINIPUSH_HTTP_PORT: '9000', MINIPUSH_EVENT_TTL: '2h', MINIPUSH_BODY_LIMIT: '8KiB' },
      argv: ['--http-port', '9100', '--roles', 'api,hub'],
    });
    expect(config.httpPort).toBe(9100);
    expect(config.eventTtlMs).toBe(7_200_000);
    expect(config.bodyLimitBytes).toBe(8192);
    expect(config.roles).toEqual(['api', 'hub']);
  });

  it('should split lists and ignore blanks', () => {
    const config = loadConfig({
      env: { MINIPUSH_KAFKA_BROKERS: ' a:1, b:2 ,', MINIPUSH_API_KEYS: 'k1,k2' },
    });
    expect(config.kafkaBrokers).toEqual(['a:1', 'b:2']);
    expect(config.apiKeys).toEqual(['k1', 'k2']);
  });

  it.each([
    [
      { MINIPUSH_HTTP_PORT: 'eighty' },
      /MINIPUSH_HTTP_PORT \/ --http-port: "eighty" is not an integer/,
    ],
    [
      { MINIPUSH_HTTP_PORT: '70000' },
      /MINIPUSH_HTTP_PORT .*70000 is outside the accepted range 0\.\.65535/,
    ],
    [{ MINIPUSH_EVENT_TTL: '3 fortnights' }, /MINIPUSH_EVENT_TTL .*not a number with a unit/],
    [{ MINIPUSH_EVENT_TTL: '3w' }, /unknown unit "w"/],
    [{ MINIPUSH_ROLES: 'api,cook' }, /unknown role "cook"; accepted: api, hub, projector, cleaner/],
    [{ MINIPUSH_E2E_ENABLED: 'maybe' }, /not a boolean/],
    [{ MINIPUSH_LOG_LEVEL: 'loud' }, /not one of fatal, error/],
    [{ MINIPUSH_MYSQL_URL: 'postgres://x' }, /expected mysql:\/\//],
    [{ MINIPUSH_DEFAULT_LIMIT: '500', MINIPUSH_MAX_LIMIT: '100' }, /must not exceed/],
    [{ MINIPUSH_JWT_SECRET: 'short' }, /at least 32 bytes/],
  ])('should reject %j with a message naming the setting', (env, message) => {
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    expect(() => loadConfig({ env })).toThrow(message);
  });

  it('should read the Kafka session timeout within the range brokers accept', () => {
    expect(loadConfig({ env: {} }).kafkaSessionTimeoutMs).toBe(10_000);
    expect(
      loadConfig({ env: { MINIPUSH_KAFKA_SESSION_TIMEOUT: '6s' } }).kafkaSessionTimeoutMs,
    ).toBe(6000);
    expect(() => loadConfig({ env: { MINIPUSH_KAFKA_SESSION_TIMEOUT: '1s' } })).toThrow(
      /MINIPUSH_KAFKA_SESSION_TIMEOUT .*1000 is outside the accepted range 6000\.\.1800000/,
    );
  });

  it('should run hub workers only for the hub role on Kafka and MySQL, auto being one per core', () => {
    const cluster = {
      MINIPUSH_KAFKA_BROKERS: '127.0.0.1:9092',
      MINIPUSH_MYSQL_URL: 'mysql://u:p@127.0.0.1:3306/db',
      MINIPUSH_ROLES: 'api,hub',
    };
    expect(loadConfig({ env: {} }).hubWorkers).toBe(1);
    expect(loadConfig({ env: { ...cluster, MINIPUSH_HUB_WORKERS: '3' } }).hubWorkers).toBe(3);
    expect(loadConfig({ env: { ...cluster, MINIPUSH_HUB_WORKERS: 'auto' } }).hubWorkers).toBe(
      os.availableParallelism(),
    );
    expect(() =>
      loadConfig({
        env: { ...cluster, MINIPUSH_ROLES: 'hub,projector', MINIPUSH_HUB_WORKERS: '2' },
      }),
    ).toThrow(/MINIPUSH_HUB_WORKERS.*run projector in another process/);
    expect(() => loadConfig({ env: { MINIPUSH_ROLES: 'hub', MINIPUSH_HUB_WORKERS: '2' } })).toThrow(
      /needs Kafka and MySQL/,
    );
  });

  it('should take a negative value after a flag, as the docs write it', () => {
    const config = loadConfig({ env: {}, argv: ['--grpc-port', '-1', '--log-retention', '-1'] });
    expect(config.grpcPort).toBe(-1);
    expect(config.logRetentionMs).toBe(-1);
    expect(loadConfig({ env: {}, argv: ['--grpc-port=-1'] }).grpcPort).toBe(-1);
  });

  it('should say which flag lacks its value', () => {
    expect(() => loadConfig({ env: {}, argv: ['--http-port'] })).toThrow(
      /--http-port.*argument missing/,
    );
  });

  it('should reject unknown flags', () => {
    expect(() => loadConfig({ env: {}, argv: ['--http-prot', '1'] })).toThrow(
      /Unknown option '--http-prot'/,
    );
  });

  it('should list every setting in the help text', () => {
    const help = settingsHelp();
    for (const setting of Object.values(SETTINGS)) {
      expect(help).toContain(`--${setting.flag}`);
      expect(help).toContain(setting.env);
    }
  });

  it('should mask secrets when printed', () => {
    const config = loadConfig({
      env: {
        MINIPUSH_API_KEYS: 'secret-key',
        MINIPUSH_MYSQL_URL: 'mysql://user:hunter2@db:3306/minipush',
      },
    });
    const shown = JSON.stringify(redacted(config));
    expect(shown).not.toContain('secret-key');
    expect(shown).not.toContain('hunter2');
    expect(shown).toContain('mysql://user:***@db:3306/minipush');
  });
});
