import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RepeatSummary, type RepeatCount } from '../../src/core/repeat-summary';

function recorder(): { summary: RepeatSummary; reports: [string, RepeatCount][]; clock: { t: number } } {
  const reports: [string, RepeatCount][] = [];
  const clock = { t: 0 };
  // A long interval: the test ticks by hand.
  const summary = new RepeatSummary({
    intervalMs: 3_600_000,
    now: () => clock.t,
    onSummary: (key, count) => reports.push([key, count]),
  });
  return { summary, reports, clock };
}

test('the first occurrence of a kind is reported in full, the next ones counted and summarised per interval', () => {
  const { summary, reports, clock } = recorder();
  assert.equal(summary.occurred('a', 'a#1'), true);
  assert.equal(summary.occurred('b', 'b#1'), true);
  for (let i = 2; i <= 5; i++) assert.equal(summary.occurred('a', `a#${i}`), false);
  clock.t = 30_000;
  summary.tick();
  assert.deepEqual(reports, [['a', { count: 4, total: 5, last: 'a#5', seconds: 30 }]]);
  assert.equal(summary.occurred('a', 'a#6'), false);
  assert.equal(summary.total('b'), 1);
  clock.t = 60_000;
  summary.tick();
  assert.deepEqual(reports[1], ['a', { count: 1, total: 6, last: 'a#6', seconds: 30 }]);
  assert.equal(summary.total('a'), 6);
  assert.equal(summary.total('b'), 0, 'b was quiet for a whole interval');
  summary.close();
});

test('a kind quiet for a whole interval starts over: its next occurrence is in full again', () => {
  const { summary, reports } = recorder();
  assert.equal(summary.occurred('a', 'x'), true);
  summary.tick(); // quiet since it was reported: not yet a whole interval
  assert.equal(summary.occurred('a', 'y'), false);
  summary.tick(); // reports y
  summary.tick();
  summary.tick(); // two quiet ticks: forgotten
  assert.equal(summary.occurred('a', 'z'), true);
  assert.deepEqual(
    reports.map(([, c]) => c.last),
    ['y'],
  );
  summary.close();
});

test('close() reports what was counted since the last summary; later occurrences are reported in full', () => {
  const { summary, reports } = recorder();
  summary.occurred('a', '1');
  summary.occurred('a', '2');
  summary.occurred('a', '3');
  summary.close();
  assert.deepEqual(
    reports.map(([k, c]) => [k, c.count, c.total, c.last]),
    [['a', 2, 3, '3']],
  );
  assert.equal(summary.occurred('a', '4'), true);
  summary.close();
  assert.equal(reports.length, 1);
});

test('the interval timer reports on its own and does not keep the process alive', async () => {
  const reports: string[] = [];
  const summary = new RepeatSummary({ intervalMs: 10, onSummary: (_k, c) => reports.push(c.last) });
  summary.occurred('a', '1');
  summary.occurred('a', '2');
  while (reports.length === 0) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(reports, ['2']);
  summary.close();
});
