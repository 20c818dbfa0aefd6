/**
 * MiniPush as a library: run it in your own process, or produce commands to its write log.
 * The CLI (`minipush`) is the usual way to run it; the client SDK is `minipush/client`.
 */
export { loadConfig, settingsHelp, type Config, type Role } from './config.js';
export { startRuntime, type Runtime, type RuntimeOptions } from './runtime.js';
export {
  createCommandProducer,
  type CommandProducer,
  type CommandProducerOptions,
} from './commands/producer.js';
export {
  COMMAND_SCHEMA_VERSION,
  InvalidCommand,
  validateCommand,
  type CommandRecord,
  type PublishCommand,
  type MarkReadCommand,
  type MarkReadUpToCommand,
  type MarkUnreadCommand,
  type MarkSeenCommand,
  type MarkSeenUpToCommand,
  type ArchiveCommand,
  type ArchiveUpToCommand,
  type UnarchiveCommand,
  type UnarchiveUpToCommand,
  type StateCommand,
} from './commands/command-record.js';
export { ERROR_CODES, MiniPushError, type ErrorCode } from './errors.js';
export { createLogger } from './logger.js';
