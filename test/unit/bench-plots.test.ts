// Benchmark plots: the SVG charts, which figures make which plot, and the PNG
// conversion (needs rsvg-convert, which test/env/install.sh installs).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, formatTick, linearTicks, logTicks, plainTick, renderChart, type Chart } from '../../bench/lib/svg-chart.ts';
import { buildPlots, ecdf, parseSize } from '../../bench/lib/plots.ts';
import { svgToPng } from '../../bench/lib/png.ts';
import { renderMarkdown, type Results, type StoredFigure } from '../../bench/lib/report.ts';

/** Tags balanced, attributes quoted, no bare `&` or `<` in text: enough to know a renderer will parse it. */
function assertWellFormed(xml: string): void {
  const stack: string[] = [];
  let roots = 0;
  const entity = /&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);)/;
  for (const [token] of xml.matchAll(/<[^>]*>|[^<]+/g)) {
    if (!token.startsWith('<')) {
      assert.doesNotMatch(token, entity, `bare & in text: ${token}`);
      if (stack.length === 0) assert.match(token, /^\s*$/, `text outside the root: ${token}`);
      continue;
    }
    const close = /^<\/([\w:-]+)\s*>$/.exec(token);
    if (close !== null) {
      assert.equal(stack.pop(), close[1], `</${close[1]}> closes another element`);
      continue;
    }
    const open = /^<([\w:-]+)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>$/.exec(token);
    assert.ok(open !== null, `malformed tag: ${token}`);
    assert.doesNotMatch(open[2]!, entity, `bare & in attributes: ${token}`);
    if (stack.length === 0) roots += 1;
    if (open[3] !== '/') stack.push(open[1]!);
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(roots, 1);
}

const count = (s: string, what: string) => s.split(what).length - 1;

const chart: Chart = {
  title: 'Latency <p99> & "friends"',
  subtitle: "Tom's run",
  x: { label: 'size', unit: 'intervals', scale: 'log' },
  y: { label: 'latency', unit: 'ms', scale: 'log' },
  series: [
    { label: 'a & b', points: [{ x: 1e5, y: 0.1 }, { x: 1e6, y: 0.2 }, { x: 1e7, y: 0.4 }] },
    { label: 'scan', points: [{ x: 1e5, y: 30 }, { x: 1e7, y: 3000 }], dash: 'dashed', markers: true },
    { label: 'candidate', points: [{ x: 1e7, y: 1.5 }], line: false },
  ],
  vlines: [{ x: 2e6, label: 'reference' }],
};

describe('svg-chart', () => {
  test('a chart is well-formed SVG of the requested size, one path per drawn line and one legend entry per series and reference line', () => {
    const svg = renderChart(chart);
    assertWellFormed(svg);
    assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="900" height="540" viewBox="0 0 900 540"/);
    assert.match(svg, /font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif"/);
    assert.equal(count(svg, 'class="series"'), 2, 'the markers-only series draws no line');
    assert.equal(count(svg, 'class="vline"'), 1);
    assert.equal(count(svg, 'class="legend-entry"'), 4);
    assert.equal(count(svg, 'stroke-dasharray="8 5"'), 4, 'the dashed series and the reference line, each with its legend swatch');
  });

  test('text is escaped for XML', () => {
    assert.equal(escapeXml(`a<b>&"c"'d'`), 'a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;');
    const svg = renderChart(chart);
    assert.ok(svg.includes('Latency &lt;p99&gt; &amp; &quot;friends&quot;'));
    assert.ok(svg.includes('Tom&apos;s run'));
    assert.ok(svg.includes('>a &amp; b<'));
    assert.ok(!svg.includes('<p99>'));
  });

  test('log ticks are the 1-2-5 values, or decades when those are too many', () => {
    assert.deepEqual(logTicks(1, 1000, 20).ticks, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);
    assert.deepEqual(logTicks(100, 20000, 10).ticks, [100, 200, 500, 1000, 2000, 5000, 10000, 20000]);
    const wide = logTicks(0.05, 5000, 8);
    assert.deepEqual([wide.lo, wide.hi], [0.05, 5000]);
    assert.deepEqual(wide.ticks, [0.1, 1, 10, 100, 1000]);
    assert.equal(wide.minor.length, 16, 'minor grid at every 1-2-5 value');
    assert.deepEqual(logTicks(1e-3, 1e9, 5).ticks, [1e-3, 1, 1e3, 1e6, 1e9], 'every third decade');
  });

  test('log domains widen to the 1-2-5 values around the data; a single value gets one on each side', () => {
    const t = logTicks(130, 17000, 20);
    assert.deepEqual([t.lo, t.hi], [100, 20000]);
    const one = logTicks(1e7, 1e7, 20);
    assert.deepEqual([one.lo, one.hi, one.ticks], [5e6, 2e7, [5e6, 1e7, 2e7]]);
    const fixed = logTicks(3, 300, 20, true);
    assert.deepEqual([fixed.lo, fixed.hi, fixed.ticks], [3, 300, [5, 10, 20, 50, 100, 200]]);
  });

  test('linear ticks use 1-2-5 steps and round the domain out to them unless it is fixed', () => {
    assert.deepEqual(linearTicks(0, 1000, 6), { lo: 0, hi: 1000, ticks: [0, 200, 400, 600, 800, 1000] });
    assert.deepEqual(linearTicks(0, 97, 6), { lo: 0, hi: 100, ticks: [0, 20, 40, 60, 80, 100] });
    assert.deepEqual(linearTicks(0, 1.04, 10, true), { lo: 0, hi: 1.04, ticks: [0, 0.2, 0.4, 0.6, 0.8, 1] });
    assert.deepEqual(linearTicks(0, 0, 5).ticks, [0, 0.5, 1]);
  });

  test('tick labels', () => {
    assert.deepEqual([0.05, 1, 500, 1000, 2500, 1e5, 1e7, 2e9].map(formatTick), ['0.05', '1', '500', '1k', '2.5k', '100k', '10M', '2G']);
    assert.deepEqual([0.1 + 0.2, 20000].map(plainTick), ['0.3', '20,000']);
  });
});

const at = '2025-06-02T10:15:03.123Z';
function fig(figure: string, value: number, extra: Partial<StoredFigure> = {}): StoredFigure {
  return { figure, label: figure, value, unit: 'ms', ceiling: null, ratio: null, params: {}, scenario: figure.split('.')[0]!, measuredAt: at, ...extra };
}
const results = (figures: StoredFigure[]): Results => ({ schema: 2, updatedAt: at, runs: [], figures });
const legend = (svg: string) => [...svg.matchAll(/<g class="legend-entry">.*?<text [^>]*>([^<]*)<\/text><\/g>/g)].map((m) => m[1]);

describe('plots', () => {
  test('every plot from a full set of figures, in report order', () => {
    const plots = buildPlots(results([
      fig('ingest.sqlite.rate', 4000, { unit: 'notifications/s', series: { unit: 'notifications/s', points: [{ t: 0, value: 3900 }, { t: 1, value: 4100 }] }, ceilingSeries: { unit: 'notifications/s', points: [{ t: 0, value: 9000 }, { t: 1, value: 9100 }] } }),
      fig('ingest.postgres.rate', 2500, { unit: 'notifications/s', series: { unit: 'notifications/s', points: [{ t: 0, value: 2500 }, { t: 1, value: 2600 }] } }),
      fig('trace.sqlite.100k.p50', 0.05, { ceiling: 30, params: { engine: 'sqlite', intervals: 100_000 } }),
      fig('trace.sqlite.10M.p50', 0.09, { ceiling: 3000 }),
      fig('trace.postgres.10M.p99', 2.5, { ceiling: 2300 }),
      fig('trace.sqlite.10M.p99.candidate-index', 1.6),
      fig('capture.bare.p50', 170, { samples: [150, 170, 200] }),
      fig('capture.trash.steady.p50', 1500, { samples: [1200, 1500, 2100], params: { deletions: 4, captured: 3 } }),
      fig('capture.trash.steady.p99', 2100),
      fig('capture.onDelete.steady.p50', 400, { samples: [300, 400, 500] }),
      fig('capture.onDelete.winrate.gap0', 0, { unit: '%', params: { gap: 0, vms: 10 } }),
      fig('capture.onDelete.winrate.gap500', 100, { unit: '%', params: { gap: 500, vms: 10 } }),
    ]));
    assert.deepEqual(plots.map((p) => p.name), ['ingest-rate', 'trace-latency', 'capture-latency', 'ondelete-winrate']);
    for (const p of plots) assertWellFormed(p.svg);
    const [ingest, trace, capture, winrate] = plots.map((p) => legend(p.svg));
    assert.deepEqual(ingest, ['sqlite', 'sqlite: bare consumer (ceiling)', 'postgres']);
    assert.deepEqual(trace, ['sqlite p50', 'postgres p99', 'sqlite p99, candidate index', 'sqlite p50: full scan (ceiling)', 'postgres p99: full scan (ceiling)']);
    assert.deepEqual(capture, ['trash steady (3 of 4 captured)', 'onDelete steady (n=3)', 'bare snap create + clone (ceiling)', 'ceiling: bare p50, 170 ms']);
    assert.deepEqual(winrate, ['onDelete win rate'], 'no ceiling series without ceilings');
  });

  test('trace sizes come from params.intervals, else from the label; both give the same x axis', () => {
    const svgOf = (params: Record<string, unknown>) => buildPlots(results([
      fig('trace.sqlite.100k.p50', 0.05, { params: params['a'] as Record<string, unknown> }),
      fig('trace.sqlite.10M.p50', 0.09, { params: params['b'] as Record<string, unknown> }),
    ]))[0]!.svg;
    const withParams = svgOf({ a: { intervals: 100_000 }, b: { intervals: 10_000_000 } });
    assert.equal(withParams, svgOf({ a: {}, b: {} }));
    assert.ok(withParams.includes('>100k<') && withParams.includes('>10M<'));
  });

  test('a plot whose data is absent is left out', () => {
    assert.deepEqual(buildPlots(results([])), []);
    const plots = buildPlots(results([
      fig('capture.trash.steady.p50', 1500), // from before samples were recorded
      fig('capture.bare.p50', 170, { samples: [150, 170] }), // a ceiling alone is no plot
      fig('ingest.sqlite.rate', 4000), // no series
      fig('capture.onDelete.winrate.gap250', 70, { unit: '%', ceiling: 100, params: { gap: 250 } }),
    ]));
    assert.deepEqual(plots.map((p) => p.name), ['ondelete-winrate']);
    assert.deepEqual(legend(plots[0]!.svg), ['onDelete win rate', 'ceiling']);
  });

  test('ecdf steps up from zero; uncaptured deletions keep it below one', () => {
    assert.deepEqual(ecdf([300, 100, 200], 4), [{ x: 100, y: 0 }, { x: 100, y: 0.25 }, { x: 200, y: 0.5 }, { x: 300, y: 0.75 }]);
    assert.deepEqual(ecdf([]), []);
    assert.deepEqual([parseSize('100k'), parseSize('10M'), parseSize('2500'), parseSize('1.5M')], [1e5, 1e7, 2500, 1.5e6]);
    assert.ok(Number.isNaN(parseSize('big')));
  });

  test('the report shows the plots it is given after the Figures table, and no section without any', () => {
    const r = results([fig('capture.bare.p50', 170)]);
    const md = renderMarkdown(r, ['capture'], () => undefined, [{ name: 'capture-latency', title: 'Capture [latency]' }]);
    assert.ok(md.includes('## Plots\n\n![Capture \\[latency\\]](bench/plots/capture-latency.png)\n'));
    assert.ok(md.indexOf('## Figures') < md.indexOf('## Plots'));
    assert.ok(!renderMarkdown(r, ['capture'], () => undefined).includes('## Plots'));
  });
});

function pngSize(png: Buffer): { width: number; height: number } {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

describe('png', () => {
  test('rsvg-convert turns a chart into a PNG of the SVG\'s size', async () => {
    assert.deepEqual(pngSize(await svgToPng(renderChart(chart))), { width: 900, height: 540 });
    assert.deepEqual(pngSize(await svgToPng(renderChart({ ...chart, width: 640, height: 400 }))), { width: 640, height: 400 });
  });

  test('a missing rsvg-convert says how to install it', async () => {
    await assert.rejects(svgToPng(renderChart(chart), '/nonexistent/rsvg-convert'), /not found.*bash test\/env\/install\.sh/);
  });

  test('an SVG rsvg-convert cannot parse is an error with its message', async () => {
    await assert.rejects(svgToPng('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g></svg>'), /rsvg-convert failed: ./);
  });
});
