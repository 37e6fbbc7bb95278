/**
 * fair-share.ts alone, over a fake database that says how many instances are alive: nothing is
 * taken before the instance has counted; then up to ceil(dataflows / instances); a reservation
 * counts (two members cannot both take the last place); over the share (an instance joined) the
 * excess is asked to give up, once, and not retaken while at the share; the last member to leave
 * deletes the heartbeat. The processes test is test/dataflow/spread.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FairShare, type ShareTicket } from '../../src/dataflow/fair-share';
import type { InstanceHeartbeat, SinkDatabase, SinkTransaction } from '../../src/sinks/types';

function fakeDatabase(label: string): SinkDatabase & { alive: number; beats: InstanceHeartbeat[]; left: string[] } {
  const db = {
    kind: 'sqlite',
    label,
    alive: 1,
    beats: [] as InstanceHeartbeat[],
    left: [] as string[],
    transaction: <T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> =>
      fn({
        announceInstance: async (h: InstanceHeartbeat) => {
          db.beats.push(h);
          return db.alive;
        },
        leaveInstance: async (_pool: string, instance: string) => {
          db.left.push(instance);
        },
      } as unknown as SinkTransaction),
    close: async () => undefined,
  };
  return db as unknown as SinkDatabase & { alive: number; beats: InstanceHeartbeat[]; left: string[] };
}

const until = async (check: () => boolean, what: string): Promise<void> => {
  const end = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('fair share: up to ceil(dataflows / instances), the excess given up once after a join, the heartbeat deleted at the end', async (t) => {
  // The pool's timers are unref'd (they keep no process alive): this one keeps the test's alive.
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const db = fakeDatabase(`fake-${process.pid}-${Date.now()}`);
  db.alive = 2;
  const gaveUp: string[] = [];
  const tickets: ShareTicket[] = [];
  for (let i = 0; i < 6; i++)
    tickets.push(FairShare.join(db, 'A', 300, { name: `d${i}`, giveUp: () => gaveUp.push(`d${i}`) }, () => undefined));
  assert.equal(tickets[0]?.reserve(), false, 'nothing is taken before the instance has counted');
  const never = new AbortController();
  await (tickets[0] as ShareTicket).counted(never.signal);
  assert.equal(db.beats.length, 1, 'one heartbeat for the six dataflows that joined together');
  assert.equal(db.beats[0]?.leaseMs, 300);
  // 6 dataflows on 2 instances: 3 here. A reservation counts until it is settled.
  const took = tickets.filter((t) => {
    if (!t.reserve()) return false;
    t.settle(true);
    return true;
  });
  assert.equal(took.length, 3);
  assert.match(tickets[5]?.describe() ?? '', /fair share: 3 of 6 dataflows on 2 instances/);
  // A third instance: 2 each. The one over the share is asked to give up (the greatest name).
  db.alive = 3;
  await until(() => gaveUp.length > 0, 'a lease given up after the join');
  assert.deepEqual(gaveUp, ['d2']);
  const twoBeats = async (): Promise<void> => {
    const n = db.beats.length;
    await until(() => db.beats.length >= n + 2, 'two more heartbeats');
  };
  await twoBeats();
  assert.deepEqual(gaveUp, ['d2'], 'asked once while it has not given up yet');
  (took[2] as ShareTicket).released();
  assert.equal(tickets[2]?.reserve(), false, 'not retaken while at the share');
  await twoBeats();
  assert.deepEqual(gaveUp, ['d2'], 'nothing more given up at the share');
  // One instance died: 3 each again.
  db.alive = 2;
  await until(() => tickets[2]?.reserve() === true, 'the share grows');
  for (const t of tickets) await t.leave();
  assert.deepEqual(db.left, ['A'], 'the last one to leave deletes the heartbeat');
});

test('a clean stop while a heartbeat is in flight: the heartbeat is deleted after it, not left for a lease time', async (t) => {
  const keepAlive = setInterval(() => undefined, 1000);
  t.after(() => clearInterval(keepAlive));
  const db = fakeDatabase(`fake-${process.pid}-${Date.now()}-inflight`);
  // The database's rows: a heartbeat written by announceInstance, deleted by leaveInstance.
  const rows = new Set<string>();
  let hold: (() => void) | null = null;
  let held!: () => void;
  const heldNow = new Promise<void>((resolve) => (held = resolve));
  const inner = db.transaction.bind(db);
  db.transaction = (<T>(fn: (tx: SinkTransaction) => Promise<T>): Promise<T> =>
    inner((tx) =>
      fn({
        announceInstance: async (h: InstanceHeartbeat) => {
          // The first heartbeat commits only when the test lets it: the member leaves meanwhile.
          await new Promise<void>((resolve) => {
            hold = resolve;
            held();
          });
          rows.add(h.instance);
          return tx.announceInstance(h);
        },
        leaveInstance: async (pool: string, instance: string) => {
          rows.delete(instance);
          return tx.leaveInstance(pool, instance);
        },
      } as unknown as SinkTransaction),
    )) as SinkDatabase['transaction'];
  const ticket = FairShare.join(db, 'B', 300, { name: 'd0', giveUp: () => undefined }, () => undefined);
  await heldNow;
  const left = ticket.leave();
  (hold as unknown as () => void)();
  await left;
  assert.deepEqual([...rows], [], 'no heartbeat row left behind');
  assert.deepEqual(db.left, ['B']);
});
