// Output of the read commands, one way for all: `-o table` (the default, fits
// a terminal), `-o wide` (every column), `-o json` and `-o yaml` (the whole
// record, stable for scripts), and `--no-headers` for tables. A command
// declares its columns once and hands over its rows.
import { Option, type Command } from 'commander';
import type { Io } from './program.ts';
import { renderTable } from './table.ts';

export const OUTPUT_FORMATS = ['table', 'wide', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface OutputOptions {
  output: OutputFormat;
  /** false with --no-headers. */
  headers: boolean;
}

export type Cell = string | number | boolean | null | undefined;

export interface Column<T> {
  header: string;
  value: (row: T) => Cell;
  /** Only with -o wide. */
  wide?: boolean;
  /** Cut longer values in the narrow table (never in wide, JSON or YAML). */
  max?: number;
}

/** Adds -o/--output and --no-headers to a read command. */
export function withOutput(cmd: Command): Command {
  return cmd
    .addOption(new Option('-o, --output <format>', 'table, wide (every column), json or yaml').choices(OUTPUT_FORMATS).default('table'))
    .option('--no-headers', 'tables without their header line');
}

function clip(value: Cell, max: number | undefined): Cell {
  if (max === undefined || typeof value !== 'string' || value.length <= max) return value;
  return `${value.slice(0, max - 1)}…`;
}

/** Prints structured data as JSON or YAML; false when the format is a table (the caller renders it). */
export async function emitStructured(io: Io, o: OutputOptions, data: unknown): Promise<boolean> {
  if (o.output === 'json') {
    io.out(`${JSON.stringify(data, null, 2)}\n`);
    return true;
  }
  if (o.output === 'yaml') {
    const { stringify } = await import('yaml');
    io.out(stringify(data, { lineWidth: 0, aliasDuplicateObjects: false }));
    return true;
  }
  return false;
}

/** A table of rows (narrow or wide), or the data as JSON/YAML (the rows themselves unless `data` is given). */
export async function emitList<T>(io: Io, o: OutputOptions, columns: Array<Column<T>>, rows: T[], data: unknown = rows): Promise<void> {
  if (await emitStructured(io, o, data)) return;
  const wide = o.output === 'wide';
  const shown = columns.filter((c) => wide || c.wide !== true);
  io.out(renderTable(shown.map((c) => c.header), rows.map((r) => shown.map((c) => (wide ? c.value(r) : clip(c.value(r), c.max)))), { headers: o.headers }));
}

/** A single record: FIELD/VALUE table, or the record as JSON/YAML. */
export async function emitRecord(io: Io, o: OutputOptions, fields: Array<[string, Cell]>, data: unknown): Promise<void> {
  if (await emitStructured(io, o, data)) return;
  io.out(renderTable(['FIELD', 'VALUE'], fields, { headers: o.headers }));
}
