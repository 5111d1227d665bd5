// One structured logger for the whole program; modules take a Logger so that
// tests can pass a silent one.
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { level?: string; name?: string } = {}): Logger {
  return pino({
    name: options.name ?? 'quarantine-operator',
    level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
    // Connection strings and keys never reach the log, even nested in a config object.
    redact: { paths: ['*.password', '*.url', '*.keyring', '*.secret', 'password', 'url', 'keyring', 'secret'], censor: '***' },
  });
}

export const silentLogger: Logger = pino({ level: 'silent' });
