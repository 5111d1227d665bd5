// The case report as an investigator sees it: report.html opened in a real
// headless browser (Debian's chromium) with networking off, its screenshot
// decoded and checked to show the timeline — a bar in each instance's colour
// and the log lines' marks, including the red one of the line nobody held.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runCli } from '../../operator/cli/program.ts';
import { EXIT } from '../../operator/cli/errors.ts';
import { NOBODY, PALETTE } from '../../operator/report/case-html.ts';
import { countColour, decodePng } from '../support/png.ts';
import { writeAbuseReport } from '../support/abuse-report.ts';

const dir = mkdtempSync(join(tmpdir(), 'qop-case-browser-'));
after(() => rmSync(dir, { recursive: true, force: true }));

async function cli(args: string[]) {
  let out = '';
  let err = '';
  const code = await runCli(args, { out: (s) => { out += s; }, err: (s) => { err += s; }, env: { LOG_LEVEL: 'silent' } });
  return { code, out, err };
}

function chromium(): string {
  for (const c of ['chromium', 'chromium-browser']) {
    const r = spawnSync('sh', ['-c', `command -v ${c}`], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.trim();
  }
  throw new Error('chromium is not installed (Debian: apt-get install -y chromium)');
}

test('report.html opens offline in headless chromium and shows the timeline', async () => {
  const db = `sqlite:${join(dir, 'ledger.db')}`;
  const w = writeAbuseReport(join(dir, 'report'));
  assert.equal((await cli(['--db', db, 'ingest', '--cloud', 'cern', w.notifications])).code, EXIT.ok);
  assert.equal((await cli(['--db', db, 'case', 'open', 'CERT-1', '--date', '2026-05-01', '--from-log', ...w.files])).code, EXIT.partial);
  const out = join(dir, 'case');
  assert.equal((await cli(['--db', db, 'case', 'report', 'CERT-1', '--dir', out])).code, EXIT.ok);

  const png = join(dir, 'shot.png');
  const r = spawnSync(chromium(), [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--no-first-run', `--user-data-dir=${mkdtempSync(join(dir, 'profile-'))}`, '--force-device-scale-factor=1', '--hide-scrollbars',
    // No network at all: a report that needed one would show broken.
    '--proxy-server=127.0.0.1:9', '--proxy-bypass-list=<-loopback>',
    `--screenshot=${png}`, '--window-size=1280,900', pathToFileURL(join(out, 'report.html')).href,
  ], { encoding: 'utf8', timeout: 120_000 });
  assert.ok(existsSync(png), `no screenshot: exit ${r.status}\n${r.stderr}`);
  const img = decodePng(readFileSync(png));
  assert.deepEqual([img.width, img.height], [1280, 900]);
  // Three instances → three bar colours, each a solid area (a bar is hundreds of pixels).
  for (const colour of PALETTE.slice(0, 3)) {
    const n = countColour(img, colour);
    assert.ok(n > 500, `${colour}: ${n} pixels`);
  }
  assert.equal(countColour(img, PALETTE[3] ?? ''), 0, 'a fourth instance colour where there are three instances');
  // The marks: the attributed lines' near-black dots and the red one of the line nobody held.
  assert.ok(countColour(img, '#111111') > 6 * 20, `line marks: ${countColour(img, '#111111')}`);
  assert.ok(countColour(img, NOBODY) > 20, `nobody mark: ${countColour(img, NOBODY)}`);
});
