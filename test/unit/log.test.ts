// Log lines: one value per key, secrets censored, JSON or text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { childLogger, createLogger, textLine } from '../../operator/log.ts';

function capture(format: 'json' | 'text' = 'json') {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format, write: (l) => void lines.push(l) });
  return { logger, lines };
}

/** Keys of one JSON line as written, duplicates included (JSON.parse would hide them). */
function rawKeys(line: string): string[] {
  return [...line.matchAll(/[{,]"([^"]+)":/g)].map((m) => m[1] ?? '');
}

test('a key bound by a child is not written again, by a call or by a nested child', () => {
  const { logger, lines } = capture();
  const cloud = logger.child({ cloud: 'lab' });
  cloud.info({ cloud: 'lab', quarantine: 'q1' }, 'quarantined');
  childLogger(cloud, { cloud: 'lab' }).info({ instance: 'vm' }, 'applied');
  childLogger(cloud, { queue: 'q' }).info('consuming');
  for (const line of lines) {
    const keys = rawKeys(line);
    assert.deepEqual(keys, [...new Set(keys)], line);
    assert.equal((JSON.parse(line) as { cloud: string }).cloud, 'lab');
  }
  assert.equal(lines.length, 3);
  assert.equal((JSON.parse(lines[2] ?? '') as { queue: string }).queue, 'q');
});

test('a different value for a bound key is kept (nothing is lost)', () => {
  const { logger, lines } = capture();
  logger.child({ cloud: 'lab' }).info({ cloud: 'other' }, 'moved');
  assert.match(lines[0] ?? '', /"cloud":"other"/);
});

test('urls and secrets are censored; a listen address is not', () => {
  const { logger, lines } = capture();
  logger.info({ url: 'amqp://u:p@h/', listen: 'https://0.0.0.0:8080' }, 'http listening');
  const o = JSON.parse(lines[0] ?? '') as Record<string, string>;
  assert.equal(o['url'], '***');
  assert.equal(o['listen'], 'https://0.0.0.0:8080');
});

test('text format: time, level, message, then key=value pairs quoted when needed', () => {
  const { logger, lines } = capture('text');
  logger.child({ cloud: 'lab' }).warn({ pool: 'vms', note: 'two words' }, 'trash off');
  assert.match(lines[0] ?? '', /^\d{4}-\d\d-\d\dT\S+Z WARN  trash off .*cloud=lab pool=vms note="two words"\n$/);
  assert.equal(textLine('not json'), 'not json\n');
});
