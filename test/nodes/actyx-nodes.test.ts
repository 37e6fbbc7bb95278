/**
 * actyx-config, actyx-subscribe and actyx-publish in a Node-RED runtime (node-red-node-test-helper):
 * the embedded log and the fake Actyx node as sources, shared ref-counted connections, dataflow
 * membership, and bad configurations and bad input giving clear statuses and errors, never a crash.
 */
import { after, afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import actyxConfig from '../../src/nodes/actyx-config';
import actyxSubscribe from '../../src/nodes/actyx-subscribe';
import actyxPublish from '../../src/nodes/actyx-publish';
import type { ActyxConfigNode } from '../../src/nodes/actyx-connection';
import type { MemberDescription } from '../../src/nodes/dataflow-membership';
import type { Node, NodeAPI, NodeDef } from '../../src/nodes/red';
import type { EventSource } from '../../src/sources/types';
import { FakeActyx } from '../support/fake-actyx';
import { freePort } from '../support/actyx-helpers';
import { errorsOf, eventually, helper, statusesOf, type FlowNode } from './dd-helper';

const NODES = [actyxConfig, actyxSubscribe, actyxPublish];
const dirs: string[] = [];
let fake: FakeActyx | null = null;

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'deltaflow-actyx-nodes-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  await helper.unload();
  await fake?.close();
  fake = null;
});
after(async () => {
  await helper.stopServer().catch(() => undefined);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const tab: FlowNode = { id: 'tab', type: 'tab' };
const CONFIG_TYPES = new Set(['actyx-config', 'dd-dataflow']);

/** A flow of one tab: config nodes stay global, every other node is placed on the tab. */
function onTab(...nodes: FlowNode[]): FlowNode[] {
  return [tab, ...nodes.map((n) => (CONFIG_TYPES.has(n.type) ? n : { z: 'tab', x: 0, y: 0, ...n }))];
}

/** A Catch node for every error on the tab, wired to helper node `caught`. */
const CATCH_ALL: FlowNode[] = [
  { id: 'catch', type: 'catch', scope: null, uncaught: false, wires: [['caught']] },
  { id: 'caught', type: 'helper' },
];

function embeddedConfig(file: string): FlowNode {
  return { id: 'cfg', type: 'actyx-config', name: 'local log', kind: 'embedded', file };
}

function actyxNodeConfig(port: number): FlowNode {
  return {
    id: 'cfg',
    type: 'actyx-config',
    kind: 'actyx',
    host: '127.0.0.1',
    port: String(port),
    appId: 'com.example.nodes',
    displayName: 'Nodes test',
    version: '1.0.0',
  };
}

function circular(): Record<string, unknown> {
  const o: Record<string, unknown> = { a: 1 };
  o.self = o;
  return o;
}

function collect(id: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  helper.getNode(id).on('input', (msg) => out.push(msg));
  return out;
}

test('embedded log: publish an object and an array; subscribe from the beginning sends one message per event', async () => {
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(
    NODES,
    onTab(
      embeddedConfig(file),
      {
        id: 'pub',
        type: 'actyx-publish',
        name: 'publish',
        actyx: 'cfg',
        tags: 'machine, machine:Drill1',
        wires: [['pubOut']],
      },
      { id: 'pubOut', type: 'helper' },
      {
        id: 'sub',
        type: 'actyx-subscribe',
        name: 'drill events',
        actyx: 'cfg',
        query: "FROM 'machine:Drill1'",
        start: 'beginning',
        wires: [['subOut']],
      },
      { id: 'subOut', type: 'helper' },
    ),
  );
  const published = collect('pubOut');
  const received = collect('subOut');
  helper.getNode('pub').receive({ payload: { status: 'working' }, tags: ['extra'] });
  helper.getNode('pub').receive({ payload: [{ status: 'idle' }, { status: 'working' }] });
  await eventually(() => published.length === 2 && received.length === 3, 'published and received messages');
  const first = published[0] as {
    event: { stream: string; offset: number; lamport: number; tags: string[] };
    published: unknown[];
  };
  assert.equal(first.event.offset, 0);
  assert.deepEqual(first.event.tags, ['machine', 'machine:Drill1', 'extra']);
  assert.equal((published[1] as { published: Array<{ offset: number }> }).published.map((p) => p.offset).join(), '1,2');
  assert.deepEqual(
    received.map((m) => m.payload),
    [{ status: 'working' }, { status: 'idle' }, { status: 'working' }],
  );
  const meta = received[0]!.event as Record<string, unknown>;
  assert.deepEqual(Object.keys(meta).sort(), ['appId', 'lamport', 'offset', 'stream', 'tags', 'timestamp']);
  assert.deepEqual(meta.tags, ['extra', 'machine', 'machine:Drill1']);
  await eventually(
    () => statusesOf('sub').some((s) => s.fill === 'green' && /^live: 3 events$/.test(s.text ?? '')),
    'live status with count',
  );
  assert.ok(statusesOf('pub').some((s) => s.text === 'published 3'));
});

test('a standalone catch-up of thousands of events delivers every one in order, then goes live', async () => {
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(NODES, onTab(embeddedConfig(file)));
  const lease = (helper.getNode('cfg') as unknown as ActyxConfigNode).acquire();
  await lease.publish(Array.from({ length: 3000 }, (_, n) => ({ tags: ['bulk'], payload: { n } })));
  await lease.close();
  await helper.unload();
  await helper.load(
    NODES,
    onTab(
      embeddedConfig(file),
      { id: 'sub', type: 'actyx-subscribe', actyx: 'cfg', query: 'bulk', start: 'beginning', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ),
  );
  const received = collect('out');
  await eventually(() => received.length === 3000, '3000 messages', 15_000);
  assert.ok(received.every((m, i) => (m.payload as { n: number }).n === i));
  await eventually(() => statusesOf('sub').some((s) => s.text === 'live: 3000 events'), 'live status');
});

test('subscribe from the present skips stored events; the "newer than" window filters old events', async () => {
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(
    NODES,
    onTab(
      embeddedConfig(file),
      { id: 'pub', type: 'actyx-publish', actyx: 'cfg', tags: 't', wires: [['pubOut']] },
      { id: 'pubOut', type: 'helper' },
    ),
  );
  const published = collect('pubOut');
  helper.getNode('pub').receive({ payload: { n: 'old' } });
  await eventually(() => published.length === 1, 'stored event');
  await helper.unload();
  await helper.load(
    NODES,
    onTab(
      embeddedConfig(file),
      { id: 'pub', type: 'actyx-publish', actyx: 'cfg', tags: 't', wires: [[]] },
      { id: 'present', type: 'actyx-subscribe', actyx: 'cfg', query: 't', start: 'present', wires: [['presentOut']] },
      { id: 'presentOut', type: 'helper' },
      {
        id: 'windowed',
        type: 'actyx-subscribe',
        actyx: 'cfg',
        query: "'t'",
        start: 'beginning',
        newerThan: '1',
        newerThanUnit: 'h',
        wires: [['windowOut']],
      },
      { id: 'windowOut', type: 'helper' },
    ),
  );
  const fromPresent = collect('presentOut');
  const windowed = collect('windowOut');
  // An event stamped two hours ago, as a device that was offline would deliver it.
  const log = (helper.getNode('cfg') as unknown as ActyxConfigNode).acquire();
  await eventually(() => statusesOf('present').some((s) => s.fill === 'green'), 'present subscriber live');
  await (log as EventSource & { publish: EventSource['publish'] }).publish([{ tags: ['t'], payload: { n: 'new' } }]);
  await eventually(
    () => fromPresent.length === 1 && windowed.length === 2,
    'new event on both, old stored one on the windowed',
  );
  assert.deepEqual(fromPresent[0]!.payload, { n: 'new' });
  assert.deepEqual(
    windowed.map((m) => m.payload),
    [{ n: 'old' }, { n: 'new' }],
    'both are newer than one hour',
  );
  await log.close();
});

test('a publish that fails or gets a non-object payload reaches Catch nodes; Node-RED keeps running', async () => {
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(
    NODES,
    onTab(
      embeddedConfig(file),
      { id: 'pub', type: 'actyx-publish', name: 'my publisher', actyx: 'cfg', tags: '', wires: [['pubOut']] },
      { id: 'pubOut', type: 'helper' },
      ...CATCH_ALL,
    ),
  );
  const caught = collect('caught');
  const ok = collect('pubOut');
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ payload: 'a string', tags: ['t'] }, /msg\.payload must be an object .*got a string \("a string"\)/],
    [{ payload: 42, tags: ['t'] }, /got a number/],
    [{ payload: null, tags: ['t'] }, /got null/],
    [{ payload: [{ a: 1 }, 'x'], tags: ['t'] }, /msg\.payload\[1\] must be an object/],
    [{ payload: [], tags: ['t'] }, /empty array/],
    [{ payload: { a: 1 } }, /no tags/],
    [{ payload: { a: 1 }, tags: 7 }, /msg\.tags must be a string or an array of strings/],
    [{ payload: { big: 1n }, tags: ['t'] }, /cannot be published as JSON/],
    [{ payload: circular(), tags: ['t'] }, /cannot be published as JSON: .*circular/],
  ];
  for (const [msg] of cases) helper.getNode('pub').receive(msg);
  helper.getNode('pub').receive({ payload: { fine: true }, tags: 'a, b' });
  await eventually(
    () => caught.length === cases.length && ok.length === 1,
    'every bad message caught, the good one published',
  );
  cases.forEach(([, pattern], i) => {
    const error = caught[i]!.error as { message: string };
    assert.match(error.message, /^Error: publishing failed: /);
    assert.match(error.message, pattern);
  });
  assert.deepEqual((ok[0]!.event as { tags: string[] }).tags, ['a', 'b']);
  assert.ok(statusesOf('pub').some((s) => s.fill === 'red'));
});

test('bad configurations give a clear status and error instead of a crash', async () => {
  const dir = tempDir();
  await helper.load(
    NODES,
    onTab(
      { id: 'cfg', type: 'actyx-config', kind: 'embedded', file: join(dir, 'no-such-dir', 'x', 'events.sqlite') },
      { id: 'badAql', type: 'actyx-subscribe', name: 'bad aql', actyx: 'cfg', query: "FROM 'a' & ('b' |", wires: [[]] },
      { id: 'noCfg', type: 'actyx-subscribe', name: 'no config', actyx: '', query: 'a', wires: [[]] },
      { id: 'badFile', type: 'actyx-subscribe', name: 'bad file', actyx: 'cfg', query: 'a', wires: [[]] },
      {
        id: 'badWindow',
        type: 'actyx-subscribe',
        name: 'bad window',
        actyx: 'cfg',
        query: 'a',
        newerThan: 'soon',
        wires: [[]],
      },
      {
        id: 'noFlow',
        type: 'actyx-subscribe',
        name: 'no flow',
        actyx: 'cfg',
        query: 'a',
        dataflow: 'missing',
        wires: [[]],
      },
      { id: 'pubBad', type: 'actyx-publish', name: 'pub bad file', actyx: 'cfg', tags: 't', wires: [[]] },
    ),
  );
  assert.ok(statusesOf('badAql').some((s) => s.fill === 'red' && s.text === 'invalid query'));
  assert.match(errorsOf('badAql').join('\n'), /invalid query: expected a tag.*but the query ends at position 18/);
  assert.ok(statusesOf('noCfg').some((s) => s.text === 'no event source'));
  assert.match(errorsOf('noCfg').join('\n'), /no event source selected/);
  assert.ok(statusesOf('badFile').some((s) => s.text === 'cannot open source'));
  assert.match(errorsOf('badFile').join('\n'), /^cannot open the embedded event log .*no-such-dir/);
  assert.match(errorsOf('badWindow').join('\n'), /only events newer than/);
  assert.ok(statusesOf('noFlow').some((s) => s.text === 'dataflow missing'));
  assert.ok(statusesOf('pubBad').some((s) => s.text === 'cannot open source'));
});

test('an Actyx node on a wrong port or an unknown host: red status with the reason, retries, Catch for publish, no crash; a bad manifest too', async () => {
  const port = await freePort();
  await helper.load(
    NODES,
    onTab(
      actyxNodeConfig(port),
      {
        id: 'sub',
        type: 'actyx-subscribe',
        name: 'unreachable',
        actyx: 'cfg',
        query: 'a',
        start: 'present',
        wires: [[]],
      },
      {
        id: 'sub2',
        type: 'actyx-subscribe',
        name: 'unreachable 2',
        actyx: 'cfg',
        query: 'a',
        start: 'beginning',
        wires: [[]],
      },
    ),
  );
  await eventually(
    () => statusesOf('sub').some((s) => s.fill === 'red' && /ECONNREFUSED|cannot reach/.test(s.text ?? '')),
    'red status for sub',
  );
  await eventually(() => statusesOf('sub2').some((s) => s.fill === 'red'), 'red status for sub2', 8000);
  assert.match(
    errorsOf('sub').join('\n'),
    new RegExp(`cannot reach the Actyx node at http://127.0.0.1:${port}/api/v2: ECONNREFUSED`),
  );
  await helper.unload();
  await helper.load(
    NODES,
    onTab(
      { ...actyxNodeConfig(port), host: 'no-such-host.invalid' },
      {
        id: 'sub',
        type: 'actyx-subscribe',
        name: 'unknown host',
        actyx: 'cfg',
        query: 'a',
        start: 'beginning',
        wires: [[]],
      },
      { id: 'pub', type: 'actyx-publish', name: 'pub unknown host', actyx: 'cfg', tags: 't', wires: [[]] },
      ...CATCH_ALL,
    ),
  );
  const caught = collect('caught');
  helper.getNode('pub').receive({ payload: { a: 1 } });
  await eventually(
    () => statusesOf('sub').some((s) => s.fill === 'red' && /ENOTFOUND/.test(s.text ?? '')),
    'red status naming the unknown host',
    8000,
  );
  await eventually(() => caught.length === 1, 'failed publish caught', 8000);
  assert.match(
    (caught[0]!.error as { message: string }).message,
    /^Error: publishing failed: cannot reach the Actyx node at http:\/\/no-such-host\.invalid:\d+\/api\/v2: ENOTFOUND/,
  );
  await helper.unload();
  await helper.load(
    NODES,
    onTab(
      { ...actyxNodeConfig(port), appId: 'not a domain' },
      { id: 'sub', type: 'actyx-subscribe', name: 'bad manifest', actyx: 'cfg', query: 'a', wires: [[]] },
    ),
  );
  assert.ok(statusesOf('sub').some((s) => s.text === 'cannot open source'));
  assert.match(errorsOf('sub').join('\n'), /reverse domain form/);
});

test('Actyx node: publish and subscribe through the fake node, malformed lines are warnings, re-auth after a restart', async () => {
  fake = await FakeActyx.start({ keepAliveMs: 50 });
  fake.publish([{ tags: ['m'], payload: { n: 0 } }]);
  await helper.load(
    NODES,
    onTab(
      actyxNodeConfig(fake.port),
      { id: 'pub', type: 'actyx-publish', actyx: 'cfg', tags: 'm', wires: [['pubOut']] },
      { id: 'pubOut', type: 'helper' },
      {
        id: 'sub',
        type: 'actyx-subscribe',
        name: 'remote',
        actyx: 'cfg',
        query: "FROM 'm'",
        start: 'beginning',
        wires: [['subOut']],
      },
      { id: 'subOut', type: 'helper' },
    ),
    { cfg: { signature: '' } },
  );
  const received = collect('subOut');
  const published = collect('pubOut');
  await eventually(() => received.length === 1, 'stored event');
  fake.streamFaults.push({ kind: 'malformed', afterEvents: 1, text: 'this is not json' });
  fake.interruptStreams('end');
  helper.getNode('pub').receive({ payload: { n: 1 } });
  await eventually(() => received.length === 2 && published.length === 1, 'published event received');
  await fake.restart();
  helper.getNode('pub').receive({ payload: { n: 2 } });
  await eventually(() => received.length === 3, 'event after a restart of the node');
  assert.deepEqual(
    received.map((m) => (m.payload as { n: number }).n),
    [0, 1, 2],
  );
  assert.equal((published[0]!.event as { stream: string }).stream.endsWith('-0'), true);
});

test('the signature is a credential and is sent with the manifest', async () => {
  fake = await FakeActyx.start({ keepAliveMs: 50 });
  await helper.load(
    NODES,
    onTab(
      { ...actyxNodeConfig(fake.port), appId: 'com.acme.signed' },
      { id: 'pub', type: 'actyx-publish', actyx: 'cfg', tags: 's', wires: [['out']] },
      { id: 'out', type: 'helper' },
    ),
    { cfg: { signature: 'valid-signature' } },
  );
  const out = collect('out');
  helper.getNode('pub').receive({ payload: { signed: true } });
  await eventually(() => out.length === 1, 'published with a signed manifest');
  assert.equal(
    (helper.getNode('cfg') as unknown as { credentials: { signature: string } }).credentials.signature,
    'valid-signature',
  );
});

test('actyx-config shares one source and closes it only after the last user released it', async () => {
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(NODES, onTab(embeddedConfig(file)));
  const cfg = helper.getNode('cfg') as unknown as ActyxConfigNode;
  const a = cfg.acquire();
  const b = cfg.acquire();
  await a.publish([{ tags: ['x'], payload: {} }]);
  assert.deepEqual(Object.values(await b.presentOffsets()), [0], 'both leases see one log');
  await a.close();
  await a.close(); // idempotent
  await b.publish([{ tags: ['x'], payload: {} }]);
  await cfg.release(b);
  await assert.rejects(b.publish([{ tags: ['x'], payload: {} }]), /closed/);
  const c = cfg.acquire();
  assert.deepEqual(Object.values(await c.presentOffsets()), [1], 'reopened on the next acquire');
  assert.equal(typeof c.subscribeBatches, 'function', 'the batched iterator is passed through');
  await cfg.release();
  assert.match(cfg.description, /^embedded log .*events\.sqlite$/);
});

test('on redeploy the config node keeps the source open until a slow user has finished closing', async () => {
  let lateWrite: Promise<unknown> | null = null;
  const slowUser = (RED: NodeAPI): void => {
    RED.nodes.registerType('slow-user', function (this: Node, config: NodeDef) {
      RED.nodes.createNode(this, config);
      const cfg = RED.nodes.getNode(String(config.actyx)) as unknown as ActyxConfigNode;
      const source = cfg.acquire();
      this.on('close', (_removed: boolean, done: () => void) => {
        // Like a dataflow finishing its last commit: it still uses the source after close began.
        lateWrite = new Promise((r) => setTimeout(r, 150))
          .then(() => source.publish([{ tags: ['late'], payload: {} }]))
          .finally(() => cfg.release(source).then(done));
      });
    });
  };
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(
    [...NODES, slowUser],
    onTab(embeddedConfig(file), { id: 'user', type: 'slow-user', actyx: 'cfg', wires: [] }),
  );
  await helper.unload();
  assert.ok(lateWrite, 'the user was closed');
  const [published] = (await lateWrite) as Array<{ offset: number }>;
  assert.equal(published!.offset, 0, 'the publish during close succeeded');
});

test('with a dataflow set, actyx-subscribe joins it as a source and leaves it on close', async () => {
  const joined: MemberDescription[] = [];
  const left: string[] = [];
  const fakeDataflow = (RED: NodeAPI): void => {
    RED.nodes.registerType('dd-dataflow', function (this: Node, config: NodeDef) {
      RED.nodes.createNode(this, config);
      Object.assign(this, {
        join: (_node: Node, member: MemberDescription) => joined.push(member),
        leave: async (node: Node) => {
          left.push(node.id);
        },
      });
    });
  };
  const file = join(tempDir(), 'events.sqlite');
  await helper.load(
    [...NODES, fakeDataflow],
    onTab(
      embeddedConfig(file),
      { id: 'df', type: 'dd-dataflow' },
      {
        id: 'sub',
        type: 'actyx-subscribe',
        name: 'machines',
        actyx: 'cfg',
        query: "machine & 'machine:Drill1'",
        dataflow: 'df',
        wires: [[]],
      },
    ),
  );
  assert.equal(joined.length, 1);
  const member = joined[0]! as MemberDescription & {
    role: 'source';
    query: string;
    source: EventSource;
    sourceId: string;
  };
  assert.equal(member.role, 'source');
  assert.equal(member.id, 'sub');
  assert.equal(member.label, 'machines');
  assert.equal(member.query, "FROM 'machine' & 'machine:Drill1'");
  assert.equal(member.sourceId, 'cfg');
  assert.deepEqual(member.definition, { query: "machine & 'machine:Drill1'", newerThanSeconds: 0 });
  assert.deepEqual(await member.source.presentOffsets(), {});
  await helper.unload();
  assert.deepEqual(left, ['sub']);
});
