// Reads a rendered BENCHMARKS.md back into a results record. The record is
// what later runs merge into; a checkout without it (it used to live only in
// the gitignored bench/out/) would otherwise render a report holding just the
// newest run. What the report does not show cannot come back: raw samples and
// series (plots keep their last PNG until a run measures them again), and the
// figures' ids, so imported figures are keyed by label (`report:LABEL`) and a
// run that measures a figure of the same label replaces them.
import type { Target } from '../scenario.ts';
import type { Machine } from './machine.ts';
import { meetsTarget, type PlotRef, type Results, type ScenarioRun, type StoredFigure } from './report.ts';

export const importedPrefix = 'report:';

function unescapeCell(s: string): string {
  return s.trim().replace(/\\\|/g, '|');
}

/** Splits a table row on unescaped pipes. */
function cells(line: string): string[] {
  const inner = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === '\\' && inner[i + 1] === '|') {
      cur += '\\|';
      i++;
    } else if (c === '|') {
      out.push(unescapeCell(cur));
      cur = '';
    } else {
      cur += c;
    }
  }
  out.push(unescapeCell(cur));
  return out;
}

function tableRows(lines: readonly string[], header: string): string[][] {
  const start = lines.findIndex((l) => l.startsWith(header));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) rows.push(cells(lines[i]!));
  return rows;
}

/** `2026-12-03 17:36Z` → the ISO instant the renderer shortened to it. */
function isoOf(when: string): string {
  const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d)Z$/.exec(when.trim());
  if (m === null) throw new Error(`unreadable run date "${when}"`);
  return `${m[1]}T${m[2]}:00.000Z`;
}

function num(s: string): number {
  return Number(s.replace(/,/g, ''));
}

/** `1,458 /s` → value and unit; `—` → null. */
export function quantity(text: string): { value: number; unit: string } | null {
  const t = text.trim();
  if (t === '—' || t === '') return null;
  const m = /^(-?[\d,]*\.?\d+(?:e[+-]?\d+)?)(?: (.+))?$/i.exec(t);
  if (m === null) throw new Error(`unreadable quantity "${text}"`);
  return { value: num(m[1]!), unit: m[2] ?? '' };
}

function ratioOf(text: string): number | null {
  const t = text.trim();
  if (t === '—') return null;
  return num(t.replace(/×$/, ''));
}

function machineOf(lines: readonly string[]): Machine {
  const cpuLine = lines.find((l) => l.startsWith('- CPU: ')) ?? '';
  const swLine = lines.find((l) => l.startsWith('- Node ')) ?? '';
  const cpu = /^- CPU: (.*), (\d+) cores; RAM ([\d.]+) GiB; Linux (.*)$/.exec(cpuLine);
  const sw = /^- Node (.*); RabbitMQ (.*); PostgreSQL (.*); SQLite (.*) \(node:sqlite\)$/.exec(swLine);
  return {
    cpu: cpu?.[1] ?? 'unknown',
    cores: cpu === null ? 0 : Number(cpu[2]),
    ramGiB: cpu === null ? 0 : Number(cpu[3]),
    kernel: cpu?.[4] ?? 'unknown',
    node: sw?.[1] ?? 'unknown',
    rabbitmq: sw?.[2] ?? 'unknown',
    postgresql: sw?.[3] ?? 'unknown',
    sqlite: sw?.[4] ?? 'unknown',
  };
}

/** The command cell is rendered as `` `COMMAND` `` and, when there is one, a remark after it. */
function commandOf(cell: string): { command: string; remark?: string } {
  const m = /^`([^`]*)`(?: (.*))?$/.exec(cell);
  if (m === null) return { command: cell };
  return { command: m[1]!, ...(m[2] === undefined ? {} : { remark: m[2] }) };
}

/**
 * `target` and the notes of a figure from its notes cell: the renderer joins
 * the target's verdict, the notes and (when the scenario has several runs)
 * `run of DATE` with "; ".
 */
function figureNotes(cell: string, unit: string, value: number): { target?: Target; notes?: string; dates: string[] } {
  let rest = cell;
  const dates: string[] = [];
  const run = /(?:^|; )run of (\d{4}-\d\d-\d\d \d\d:\d\dZ)$/.exec(rest);
  if (run !== null) {
    dates.push(run[1]!);
    rest = rest.slice(0, run.index);
  }
  // Notes written by hand may name their run inside ("quiet run of DATE, load …"): those dates stay in the words.
  for (const m of rest.matchAll(/\brun of (\d{4}-\d\d-\d\d \d\d:\d\dZ)/g)) dates.push(m[1]!);
  let target: Target | undefined;
  const t = /^(meets|\*\*misses\*\*) target (≥|≤) (-?[\d,]*\.?\d+)(?: ([^\s;]+))?/.exec(rest);
  // A verdict with words of its own after the target ("(or ≥ 0.5 of …)"), or one that the rounded figures
  // shown would not give again, stays in the notes as written.
  if (t !== null && (t[4] ?? '') === unit && /^(?:$|; )/.test(rest.slice(t[0].length))) {
    const candidate: Target = { op: t[2] === '≥' ? '>=' : '<=', value: num(t[3]!) };
    if (meetsTarget(value, candidate) === (t[1] === 'meets')) {
      target = candidate;
      rest = rest.slice(t[0].length).replace(/^; /, '').trim();
    }
  }
  return { ...(target === undefined ? {} : { target }), ...(rest === '' ? {} : { notes: rest }), dates };
}

interface RunNote {
  scenario: string;
  command: string;
  when: string;
  lines: string[];
}

function sections(lines: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string | undefined;
  for (const l of lines) {
    const h = /^## (\S+)$/.exec(l);
    if (h !== null) {
      current = h[1]!;
      out.set(current, []);
      continue;
    }
    if (current !== undefined) out.get(current)!.push(l);
  }
  return out;
}

function runNotes(scenario: string, body: readonly string[]): RunNote[] {
  const out: RunNote[] = [];
  for (let i = 0; i < body.length; i++) {
    const m = /^Recorded by `(.*)` \((\d{4}-\d\d-\d\d \d\d:\d\dZ), load [^)]*\).*:$/.exec(body[i]!);
    if (m === null) continue;
    const note: RunNote = { scenario, command: m[1]!, when: m[2]!, lines: [] };
    for (i += 2; i < body.length && body[i]!.startsWith('- '); i++) note.lines.push(body[i]!.slice(2));
    out.push(note);
  }
  return out;
}

/**
 * Rebuilds a record from a report. `order` is the scenarios' report order,
 * which the figures table follows, so a figure without `run of` belongs to
 * the next scenario in that order that has a single run.
 */
export function resultsFromReport(markdown: string, order: readonly string[]): Results {
  const lines = markdown.split('\n');
  const machine = machineOf(lines);
  const bySection = sections(lines);
  const descriptions = new Map<string, string>();
  const notes: RunNote[] = [];
  for (const [name, body] of bySection) {
    const first = body.find((l) => l.trim() !== '');
    if (first !== undefined) descriptions.set(name, first);
    notes.push(...runNotes(name, body));
  }
  const runs: ScenarioRun[] = tableRows(lines, '| scenario | date (UTC) |').map((c) => {
    const [scenario = '', when = '', commandCell = '', duration = '', load = ''] = c;
    const { command, remark } = commandOf(commandCell);
    const d = /^(\d+) s$/.exec(duration);
    const l = /^(-?[\d.]+) → (-?[\d.]+)$/.exec(load);
    // Durations or loads written by hand (two runs in one row) stay readable in the remark.
    const odd = [d === null ? `durations ${duration}` : '', l === null ? `load ${load}` : ''].filter((x) => x !== '').join('; ');
    const remarks = [remark ?? '', odd === '' ? '' : `(${odd})`].filter((x) => x !== '').join(' ');
    const numbers = load.match(/-?\d+(?:\.\d+)?/g) ?? [];
    const note = notes.find((n) => n.scenario === scenario && n.when === when && n.command === command)
      ?? notes.find((n) => n.scenario === scenario && n.when === when);
    return {
      scenario,
      description: descriptions.get(scenario) ?? scenario,
      command,
      ...(remarks === '' ? {} : { remark: remarks }),
      startedAt: isoOf(when),
      durationS: d !== null ? Number(d[1]) : num(duration.match(/[\d,]+/)?.[0] ?? '0'),
      loadBefore: l !== null ? Number(l[1]) : Number(numbers[0] ?? 0),
      loadAfter: l !== null ? Number(l[2]) : Number(numbers[1] ?? 0),
      machine,
      notes: note?.lines ?? [],
    };
  });
  const runsOf = (s: string) => runs.filter((r) => r.scenario === s);
  const present = order.filter((s) => runsOf(s).length > 0);
  let at = 0;
  const figures: StoredFigure[] = tableRows(lines, '| figure | value |').map((c) => {
    const [label = '', valueCell = '', ceilingCell = '', ratioCell = '', notesCell = ''] = c;
    const value = quantity(valueCell);
    if (value === null) throw new Error(`figure "${label}" has no value`);
    const ceiling = quantity(ceilingCell);
    const parsed = figureNotes(notesCell, value.unit, value.value);
    const dated = (sc: string) => runsOf(sc).find((r) => parsed.dates.some((d) => r.startedAt === isoOf(d)));
    let found = present.slice(at).findIndex((sc) => dated(sc) !== undefined);
    if (found < 0) found = present.slice(at).findIndex((sc) => runsOf(sc).length === 1);
    if (found > 0) at += found;
    const scenario = present[at];
    if (scenario === undefined) throw new Error(`figure "${label}": no run of its scenario in the runs table`);
    const run = dated(scenario) ?? (runsOf(scenario).length === 1 ? runsOf(scenario)[0] : undefined);
    return {
      figure: `${importedPrefix}${label}`,
      label,
      value: value.value,
      unit: value.unit,
      ceiling: ceiling?.value ?? null,
      ratio: ratioOf(ratioCell),
      ...(parsed.target === undefined ? {} : { target: parsed.target }),
      params: {},
      ...(parsed.notes === undefined ? {} : { notes: parsed.notes }),
      scenario,
      measuredAt: run?.startedAt ?? '',
    };
  });
  const plots: PlotRef[] = [];
  for (const l of lines) {
    const m = /^!\[(.*)\]\(bench\/plots\/([^)]+)\.png\)$/.exec(l);
    if (m !== null) plots.push({ title: m[1]!.replace(/\\([[\]\\])/g, '$1'), name: decodeURIComponent(m[2]!) });
  }
  return { schema: 2, updatedAt: new Date().toISOString(), runs, figures, ...(plots.length === 0 ? {} : { plots }) };
}
