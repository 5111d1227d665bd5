// Line and step charts as SVG strings, for the benchmark plots. Hand-written
// rather than a chart library because the project takes no dependencies for
// its benchmark, and plain SVG 1.1 is all rsvg-convert needs to make a PNG.
// Pure functions: the caller decides where the text goes.

export type Scale = 'linear' | 'log';
export type Dash = 'solid' | 'dashed' | 'dotted';

export interface Axis {
  label: string;
  unit?: string | undefined;
  scale?: Scale | undefined;
  /** Fixed bounds, used as given; otherwise the data's range widened to round values. */
  min?: number | undefined;
  max?: number | undefined;
  /** Tick labels; by default 1k / 1M on a log axis, 1,000 on a linear one. */
  format?: ((v: number) => string) | undefined;
}

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  label: string;
  points: readonly Point[];
  color?: string | undefined;
  dash?: Dash | undefined;
  /** Horizontal, then vertical to the next point: an empirical CDF. */
  step?: boolean | undefined;
  markers?: boolean | undefined;
  /** false: markers only, for points that are not a progression. */
  line?: boolean | undefined;
}

export interface RefLine {
  x: number;
  label: string;
  color?: string | undefined;
  dash?: Dash | undefined;
}

export interface Chart {
  title: string;
  subtitle?: string | undefined;
  x: Axis;
  y: Axis;
  series: readonly Series[];
  vlines?: readonly RefLine[] | undefined;
  width?: number | undefined;
  height?: number | undefined;
}

/** Okabe–Ito (its yellow, too pale for a line on white, replaced by brown): distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#56B4E9', '#CC79A7', '#000000', '#8C564B'] as const;
export const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

const DASHES: Record<Dash, string | undefined> = { solid: undefined, dashed: '8 5', dotted: '2 4' };
const FONT_SIZE = 12;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** No font metrics without a renderer; DejaVu Sans, the widest of the list, averages about 0.6 em a character. */
export function textWidth(s: string, size = FONT_SIZE): number {
  return s.length * size * 0.6;
}

function clean(v: number): number {
  return Number(v.toPrecision(12));
}

/** 12.5 rather than 12.500000001, 1k / 2.5M for large values, which keeps log axes narrow. */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${clean(v / 1e9)}G`;
  if (a >= 1e6) return `${clean(v / 1e6)}M`;
  if (a >= 1e3) return `${clean(v / 1e3)}k`;
  return String(clean(v));
}

/** With thousands separators, for axes where "k" would read as a unit. */
export function plainTick(v: number): string {
  return clean(v).toLocaleString('en-US', { maximumFractionDigits: 6 });
}

/** Round steps 1, 2, 5 × 10^k, the smallest giving at most maxCount ticks over [lo, hi], and the domain widened to it. */
export function linearTicks(lo: number, hi: number, maxCount: number, fixed = false): { lo: number; hi: number; ticks: number[] } {
  if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    [lo, hi] = [lo - (lo === 0 ? 0 : d), hi + d];
  }
  const count = Math.max(2, maxCount);
  let step = 10 ** Math.floor(Math.log10((hi - lo) / count));
  for (let i = 0; ; i++) {
    const s = step * [1, 2, 5][i % 3]! * 10 ** Math.floor(i / 3);
    if (Math.floor(hi / s) - Math.ceil(lo / s) + 1 <= count) {
      step = s;
      break;
    }
  }
  const a = fixed ? lo : Math.floor(lo / step) * step;
  const b = fixed ? hi : Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let k = Math.ceil(a / step - 1e-9); k * step <= b + step * 1e-9; k++) ticks.push(clean(k * step));
  return { lo: clean(a), hi: clean(b), ticks };
}

/** The 1-2-5 values (m × 10^k, m ∈ {1, 2, 5}) within [lo, hi]. */
export function grid125(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let k = Math.floor(Math.log10(lo)) - 1; k <= Math.ceil(Math.log10(hi)); k++) {
    for (const m of [1, 2, 5]) {
      const v = clean(m * 10 ** k);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
    }
  }
  return out;
}

/** The domain widened to the 1-2-5 values around [lo, hi] (or taken as given), minor grid lines at every 1-2-5 value, labels at 1-2-5, or at decades when that is too many. */
export function logTicks(lo: number, hi: number, maxCount: number, fixed = false): { lo: number; hi: number; ticks: number[]; minor: number[] } {
  if (!(lo > 0)) lo = hi > 0 ? hi / 10 : 1;
  if (!(hi >= lo)) hi = lo;
  if (fixed && hi === lo) hi = lo * 10;
  let a = lo;
  let b = hi;
  if (!fixed) {
    const around = grid125(lo / 10, hi * 10);
    a = around.filter((v) => v <= lo * (1 + 1e-9)).at(-1) ?? lo;
    b = around.find((v) => v >= hi * (1 - 1e-9)) ?? hi;
    if (a === b) {
      a = around.filter((v) => v < a).at(-1) ?? a / 2;
      b = around.find((v) => v > b) ?? b * 2;
    }
  }
  const minor = grid125(a, b);
  if (minor.length <= maxCount) return { lo: a, hi: b, ticks: minor, minor };
  const decades = minor.filter((v) => Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9);
  const every = Math.max(1, Math.ceil(decades.length / Math.max(1, maxCount)));
  return { lo: a, hi: b, ticks: decades.filter((_, i) => i % every === 0), minor };
}

interface Mapped {
  lo: number;
  hi: number;
  ticks: number[];
  minor: number[];
  labels: string[];
  at(v: number): number;
}

/** Data range to pixel range; ticks chosen so that their labels fit the length. */
function mapAxis(axis: Axis, values: number[], from: number, to: number, horizontal: boolean): Mapped {
  const log = axis.scale === 'log';
  const usable = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  const fixed = axis.min !== undefined && axis.max !== undefined;
  let lo = axis.min ?? (usable.length > 0 ? Math.min(...usable) : log ? 1 : 0);
  let hi = axis.max ?? (usable.length > 0 ? Math.max(...usable) : log ? 10 : 1);
  // A linear axis starts at zero unless told otherwise: rates and fractions read wrong from an offset origin.
  if (!log && axis.min === undefined) lo = Math.min(lo, 0);
  if (!log && axis.max === undefined) hi = Math.max(hi, 0);
  const format = axis.format ?? (log ? formatTick : plainTick);
  const length = Math.abs(to - from);
  let maxCount = Math.max(2, Math.floor(length / (horizontal ? 50 : 36)));
  for (;;) {
    const t = log ? logTicks(lo, hi, maxCount, fixed) : { ...linearTicks(lo, hi, maxCount, fixed), minor: [] as number[] };
    const labels = t.ticks.map(format);
    const room = length / Math.max(1, t.ticks.length - 1);
    const need = horizontal ? Math.max(0, ...labels.map((l) => textWidth(l))) + 14 : FONT_SIZE + 10;
    if (room >= need || maxCount <= 2) {
      const [l0, l1] = log ? [Math.log10(t.lo), Math.log10(t.hi)] : [t.lo, t.hi];
      const at = (v: number) => from + ((log ? Math.log10(v) : v) - l0) / (l1 - l0) * (to - from);
      return { lo: t.lo, hi: t.hi, ticks: t.ticks, minor: t.minor, labels, at };
    }
    maxCount -= 1;
  }
}

function n(v: number): string {
  return String(Math.round(v * 100) / 100);
}

function dashAttr(d: Dash | undefined): string {
  const a = DASHES[d ?? 'solid'];
  return a === undefined ? '' : ` stroke-dasharray="${a}"`;
}

function axisTitle(a: Axis): string {
  return a.unit === undefined || a.unit === '' ? a.label : `${a.label} (${a.unit})`;
}

export function renderChart(chart: Chart): string {
  const W = chart.width ?? 900;
  const H = chart.height ?? 540;
  const log = { x: chart.x.scale === 'log', y: chart.y.scale === 'log' };
  const keep = (p: Point) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!log.x || p.x > 0) && (!log.y || p.y > 0);
  const series = chart.series.map((s, i) => ({ ...s, points: s.points.filter(keep), color: s.color ?? PALETTE[i % PALETTE.length]! }));
  const vlines = (chart.vlines ?? []).filter((v) => Number.isFinite(v.x) && (!log.x || v.x > 0));

  const legend = [
    ...series.map((s) => ({ label: s.label, color: s.color, dash: s.dash, line: s.line !== false, markers: s.markers === true || s.line === false || s.points.length === 1 })),
    ...vlines.map((v) => ({ label: v.label, color: v.color ?? '#444444', dash: v.dash ?? 'dashed', line: true, markers: false })),
  ];
  const legendW = legend.length === 0 ? 0 : 28 + 8 + Math.max(...legend.map((e) => textWidth(e.label))) + 20;

  const top = 16 + 18 + (chart.subtitle === undefined ? 0 : 18) + 16;
  const bottom = H - 62;
  const y = mapAxis(chart.y, series.flatMap((s) => s.points.map((p) => p.y)), bottom, top, false);
  const left = 16 + 16 + 10 + Math.max(0, ...y.labels.map((l) => textWidth(l))) + 8;
  const right = W - 20 - (legendW === 0 ? 0 : legendW + 16);
  const x = mapAxis(chart.x, [...series.flatMap((s) => s.points.map((p) => p.x)), ...vlines.map((v) => v.x)], left, right, true);

  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${escapeXml(FONT)}" font-size="${FONT_SIZE}">`);
  out.push(`<title>${escapeXml(chart.title)}</title>`);
  // An opaque background: a transparent PNG shows black text on black in a dark-themed viewer.
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  // A little wider than the axes, so that a marker on the edge shows whole.
  out.push(`<defs><clipPath id="plot"><rect x="${n(left - 6)}" y="${n(top - 6)}" width="${n(right - left + 12)}" height="${n(bottom - top + 12)}"/></clipPath></defs>`);
  out.push(`<text x="${n(W / 2)}" y="${16 + 14}" text-anchor="middle" font-size="17" font-weight="bold" fill="#222222">${escapeXml(chart.title)}</text>`);
  if (chart.subtitle !== undefined) out.push(`<text x="${n(W / 2)}" y="${16 + 18 + 14}" text-anchor="middle" font-size="12" fill="#666666">${escapeXml(chart.subtitle)}</text>`);

  const grid: string[] = [];
  for (const v of x.minor) if (!x.ticks.includes(v)) grid.push(`M${n(x.at(v))} ${n(top)}V${n(bottom)}`);
  for (const v of y.minor) if (!y.ticks.includes(v)) grid.push(`M${n(left)} ${n(y.at(v))}H${n(right)}`);
  if (grid.length > 0) out.push(`<path d="${grid.join('')}" stroke="#f0f0f0" stroke-width="1" fill="none"/>`);
  const major = [...x.ticks.map((v) => `M${n(x.at(v))} ${n(top)}V${n(bottom)}`), ...y.ticks.map((v) => `M${n(left)} ${n(y.at(v))}H${n(right)}`)];
  out.push(`<path d="${major.join('')}" stroke="#dddddd" stroke-width="1" fill="none"/>`);
  out.push(`<path d="M${n(left)} ${n(top)}V${n(bottom)}H${n(right)}" stroke="#444444" stroke-width="1" fill="none"/>`);

  out.push('<g fill="#333333">');
  x.ticks.forEach((v, i) => {
    out.push(`<path d="M${n(x.at(v))} ${n(bottom)}v5" stroke="#444444"/><text x="${n(x.at(v))}" y="${n(bottom + 19)}" text-anchor="middle">${escapeXml(x.labels[i]!)}</text>`);
  });
  y.ticks.forEach((v, i) => {
    out.push(`<path d="M${n(left)} ${n(y.at(v))}h-5" stroke="#444444"/><text x="${n(left - 8)}" y="${n(y.at(v) + 4)}" text-anchor="end">${escapeXml(y.labels[i]!)}</text>`);
  });
  out.push('</g>');
  out.push(`<text x="${n((left + right) / 2)}" y="${n(bottom + 44)}" text-anchor="middle" font-size="13" fill="#222222">${escapeXml(axisTitle(chart.x))}</text>`);
  out.push(`<text transform="translate(${16 + 12} ${n((top + bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="13" fill="#222222">${escapeXml(axisTitle(chart.y))}</text>`);

  out.push('<g clip-path="url(#plot)">');
  for (const v of vlines) {
    out.push(`<path class="vline" d="M${n(x.at(v.x))} ${n(top)}V${n(bottom)}" stroke="${escapeXml(v.color ?? '#444444')}" stroke-width="1.5"${dashAttr(v.dash ?? 'dashed')} fill="none"/>`);
  }
  for (const s of series) {
    const pts = s.points.map((p) => ({ px: x.at(p.x), py: y.at(p.y) }));
    if (s.line !== false && pts.length > 1) {
      const d = pts.map((p, i) => (i === 0 ? `M${n(p.px)} ${n(p.py)}` : s.step === true ? `H${n(p.px)}V${n(p.py)}` : `L${n(p.px)} ${n(p.py)}`)).join('');
      out.push(`<path class="series" d="${d}" stroke="${escapeXml(s.color)}" stroke-width="2"${dashAttr(s.dash)} stroke-linejoin="round" fill="none"/>`);
    }
    if (s.markers === true || s.line === false || pts.length === 1) {
      out.push(`<g class="markers" fill="${escapeXml(s.color)}" stroke="#ffffff" stroke-width="1">${pts.map((p) => `<circle cx="${n(p.px)}" cy="${n(p.py)}" r="4"/>`).join('')}</g>`);
    }
  }
  out.push('</g>');

  if (legend.length > 0) {
    const lx = right + 16;
    const ly = top;
    out.push(`<g class="legend"><rect x="${n(lx)}" y="${n(ly)}" width="${n(legendW)}" height="${n(legend.length * 20 + 12)}" fill="#ffffff" stroke="#cccccc"/>`);
    legend.forEach((e, i) => {
      const cy = ly + 16 + i * 20;
      const parts = [`<g class="legend-entry">`];
      if (e.line) parts.push(`<path d="M${n(lx + 10)} ${n(cy)}h28" stroke="${escapeXml(e.color)}" stroke-width="2"${dashAttr(e.dash)}/>`);
      if (e.markers) parts.push(`<circle cx="${n(lx + 24)}" cy="${n(cy)}" r="4" fill="${escapeXml(e.color)}" stroke="#ffffff"/>`);
      parts.push(`<text x="${n(lx + 46)}" y="${n(cy + 4)}" fill="#222222">${escapeXml(e.label)}</text></g>`);
      out.push(parts.join(''));
    });
    out.push('</g>');
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
