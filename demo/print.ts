// How the demo talks to the person watching it: one timestamped, verb-first
// line per step, indented details under it, command output as a block.
// Colour only on a terminal, so that a log file or a CI transcript stays plain.

const useColor = process.stdout.isTTY === true && (process.env['NO_COLOR'] ?? '') === '' && process.env['TERM'] !== 'dumb';

const paint = (code: string) => (s: string) => (useColor ? `\u001b[${code}m${s}\u001b[0m` : s);
export const bold = paint('1');
export const dim = paint('2');
export const green = paint('32');
export const red = paint('31');
export const yellow = paint('33');

const INDENT = ' '.repeat(11);

function clock(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function write(line: string): void {
  process.stdout.write(`${line}\n`);
}

/** A step: what just happened (or is happening), in a few words. */
export function step(text: string): void {
  write(`${dim(clock())}  ${bold(text)}`);
}

/** A fact under the current step. */
export function detail(text: string): void {
  write(`${INDENT}${text}`);
}

/** Something a simulated service or the operator did, as it happens. */
export function event(who: string, text: string): void {
  write(`${INDENT}${dim(clock())} ${who.padEnd(8)} ${text}`);
}

/** A command as typed, then its output verbatim. */
export function command(cmdline: string, output: string): void {
  write(`${INDENT}${dim('$')} ${cmdline}`);
  for (const line of output.replace(/\n$/, '').split('\n')) write(`${INDENT}  ${line}`);
}

export function ok(text: string): void {
  write(`${INDENT}${green('OK')} ${text}`);
}

export function fail(text: string): void {
  write(`${INDENT}${red('WRONG')} ${text}`);
}

export function warn(text: string): void {
  write(`${INDENT}${yellow('!')} ${text}`);
}

export function blank(): void {
  write('');
}

export function heading(text: string): void {
  write('');
  write(bold(text));
}

export function plain(text: string): void {
  write(text);
}

/** A time an investigator would type: ISO 8601 with the local offset, to the second. */
export function isoLocal(d: Date): string {
  const p = (n: number) => String(Math.abs(n)).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const date = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return off === 0 ? `${date}Z` : `${date}${off < 0 ? '-' : '+'}${p(Math.trunc(off / 60))}:${p(off % 60)}`;
}

export function hhmmss(d: Date): string {
  return clock(d);
}

export function mib(bytes: number): string {
  return `${(bytes / 1048576).toFixed(bytes % 1048576 === 0 ? 0 : 1)} MiB`;
}
