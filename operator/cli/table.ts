// Plain aligned columns for terminal output; JSON and YAML are the stable formats for scripts.

type Cell = string | number | boolean | null | undefined;

/**
 * The table's lines (without line ends), each handed to `line` as it is
 * made: a report of 100,000 log lines has some 1.75 million rows, whose
 * text together comes near the longest string V8 can hold.
 */
export function writeTable(line: (s: string) => void, headers: string[], rows: ReadonlyArray<ReadonlyArray<Cell>>, options: { headers?: boolean } = {}): void {
  const text = (c: Cell) => (c === null || c === undefined || c === '' ? '-' : String(c));
  const withHeaders = options.headers !== false;
  // A loop, not Math.max(...column): spreading a million cells overflows the call stack.
  const widths = headers.map((h) => (withHeaders ? h.length : 0));
  for (const r of rows) {
    for (let i = 0; i < headers.length; i++) {
      const n = text(r[i]).length;
      if (n > (widths[i] as number)) widths[i] = n;
    }
  }
  const render = (r: ReadonlyArray<string>) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  if (withHeaders) line(render(headers));
  for (const r of rows) line(render(r.map(text)));
}

export function renderTable(headers: string[], rows: ReadonlyArray<ReadonlyArray<Cell>>, options: { headers?: boolean } = {}): string {
  const lines: string[] = [];
  writeTable((s) => lines.push(s), headers, rows, options);
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
