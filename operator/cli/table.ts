// Plain aligned columns for terminal output; JSON and YAML are the stable formats for scripts.
export function renderTable(headers: string[], rows: Array<Array<string | number | boolean | null | undefined>>, options: { headers?: boolean } = {}): string {
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined || c === '' ? '-' : String(c))));
  const withHeaders = options.headers !== false;
  const widths = headers.map((h, i) => Math.max(withHeaders ? h.length : 0, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const lines = [...(withHeaders ? [line(headers)] : []), ...cells.map(line)];
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
