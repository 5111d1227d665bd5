// One structured logger for the whole program; modules take a Logger so that
// tests can pass a silent one.
import { pino, type Logger } from 'pino';

export type { Logger };

export type LogFormat = 'json' | 'text';
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'text'];

const CORE_KEYS = new Set(['level', 'time', 'pid', 'hostname', 'name', 'msg']);

/** One JSON log line as `TIME LEVEL msg key=value ...`, for reading by eye. */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = typeof o['level'] === 'number' ? (pino.levels.labels[o['level']] ?? String(o['level'])) : String(o['level']);
  const time = typeof o['time'] === 'number' ? new Date(o['time']).toISOString() : '';
  const fields = Object.entries(o)
    .filter(([k]) => !CORE_KEYS.has(k))
    .map(([k, v]) => {
      const s = typeof v === 'string' ? v : JSON.stringify(v);
      return `${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
    });
  return `${[time, level.toUpperCase().padEnd(5), String(o['msg'] ?? ''), ...fields].filter((p) => p !== '').join(' ')}\n`;
}

export function createLogger(options: { level?: string; name?: string; format?: LogFormat; write?: (line: string) => void } = {}): Logger {
  const write = options.write ?? ((line: string) => void process.stdout.write(line));
  const format = options.format ?? (process.env['QUARANTINE_LOG_FORMAT'] === 'text' ? 'text' : 'json');
  return pino(
    {
      name: options.name ?? 'quarantine-operator',
      level: options.level ?? process.env['LOG_LEVEL'] ?? 'info',
      // Connection strings and keys never reach the log, even nested in a config object.
      redact: { paths: ['*.password', '*.url', '*.keyring', '*.secret', 'password', 'url', 'keyring', 'secret'], censor: '***' },
      hooks: {
        // A key the logger is already bound to (a child's `cloud`) is not written twice.
        logMethod(args, method) {
          const first: unknown = args[0];
          if (first !== null && typeof first === 'object' && !(first instanceof Error)) {
            const bound = this.bindings();
            const own = first as Record<string, unknown>;
            if (Object.keys(own).some((k) => k in bound && bound[k] === own[k])) {
              const rest = Object.fromEntries(Object.entries(own).filter(([k, v]) => !(k in bound && bound[k] === v)));
              return method.apply(this, [rest, ...args.slice(1)] as Parameters<typeof method>);
            }
          }
          return method.apply(this, args);
        },
      },
    },
    { write: (line: string) => write(format === 'text' ? textLine(line) : line) },
  );
}

/** A child logger that adds only the bindings its parent does not already carry with the same value. */
export function childLogger(logger: Logger, bindings: Record<string, string | number>): Logger {
  const bound = logger.bindings();
  const fresh = Object.fromEntries(Object.entries(bindings).filter(([k, v]) => bound[k] !== v));
  return Object.keys(fresh).length === 0 ? logger : logger.child(fresh);
}

export const silentLogger: Logger = pino({ level: 'silent' });
