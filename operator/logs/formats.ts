// The names of the log formats, apart from their parsers (logs/read.ts), so
// that the CLI can offer them as choices without loading the parsers and zod.

/** In the order detection prefers them: the more specific first. */
export const LOG_FORMAT_NAMES = ['zeek-tsv', 'zeek-json', 'nfdump', 'combined', 'batch', 'syslog', 'csv'] as const;

export type LogFormat = (typeof LOG_FORMAT_NAMES)[number];
export const isLogFormat = (s: string): s is LogFormat => (LOG_FORMAT_NAMES as readonly string[]).includes(s);
