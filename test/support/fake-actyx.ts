/**
 * A fake Actyx v2 node for tests: node:http on port 0 serving /api/v2/auth, /node/id,
 * /events/offsets, /events/query, /events/subscribe and /events/publish as the reference pages
 * describe (NDJSON with keep-alive lines), backed by an in-memory embedded log, with fault
 * injection: dropped connections, clean ends, silence, 401 ERR_TOKEN_EXPIRED, 503
 * ERR_SERVICE_OVERLOADED, diagnostics, malformed lines and restarts with a new node id. Bounded
 * queries can misbehave as proxies and load balancers make them: empty 200 responses, no closing
 * offsets line, a line cut in the middle, and streams interleaved in any order.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { parseQuery } from '../../src/sources/aql';
import { EmbeddedLog, type PublishAsOptions, type PublishAsRequest } from '../../src/sources/embedded-log';
import { type OffsetMap, offsetOf } from '../../src/core/offset-map';
import type { ActyxEvent, PublishedEvent, PublishRequest } from '../../src/sources/types';
import { seededRandom } from '../../src/simulator/seeded-random';

/** What happens to one streaming response after it has written `afterEvents` events. */
export interface StreamFault {
  /**
   * `cutLine`: half of the next line, then a clean end (a proxy cutting the response mid-line);
   * `noOffsets`: a query response that ends without its offsets line (`afterEvents` is ignored).
   */
  readonly kind: 'drop' | 'end' | 'hang' | 'malformed' | 'warning' | 'error' | 'errorObject' | 'cutLine' | 'noOffsets';
  readonly afterEvents: number;
  /** The text of a `malformed` line (default: broken JSON). */
  readonly text?: string;
}

/** A request the fake received on a streaming endpoint, for assertions. */
export interface StreamRequest {
  readonly path: string;
  readonly query: string;
  readonly lowerBound: OffsetMap;
  readonly upperBound?: OffsetMap;
}

/**
 * How every /events/query response is answered: `complete` as the node does (events, then the
 * offsets line); `empty` a 200 with no line at all; `noOffsets` the events without the closing
 * offsets line.
 */
export type QueryAnswer = 'complete' | 'empty' | 'noOffsets';

/**
 * In which order a query response interleaves the streams (each stream stays in offset order):
 * `asc` Lamport order as asked; `byStream` one stream after the other, in descending stream-id
 * order; `shuffled` a random interleaving (seeded per response).
 */
export type QueryInterleaving = 'asc' | 'byStream' | 'shuffled';

export interface FakeActyxOptions {
  /** Keep-alive interval in ms (Actyx: 15,000). */
  readonly keepAliveMs?: number;
}

interface OpenStream {
  readonly res: http.ServerResponse;
  hang: boolean;
  readonly abort: AbortController;
}

function newNodeId(): string {
  return randomUUID().replace(/-/g, '');
}

export class FakeActyx {
  readonly log = new EmbeddedLog(':memory:', { appId: 'com.example.fake', foreignWritePollMs: 0 });
  nodeId = newNodeId();
  port = 0;
  /** Faults for the next streaming responses (subscribe and query), one per response, in order. */
  readonly streamFaults: StreamFault[] = [];
  /** Answers for the next requests to /events/* (not auth): each entry is used once. */
  readonly requestFaults: Array<{ status: 401 | 503 | 500; code: string }> = [];
  /** Answer for the next /auth requests: each entry is used once. */
  readonly authFaults: Array<{ status: number; code: string }> = [];
  readonly streamRequests: StreamRequest[] = [];
  /** How query responses end (see QueryAnswer); change it at any time. */
  queryAnswer: QueryAnswer = 'complete';
  /** How query responses interleave the streams (see QueryInterleaving). */
  queryInterleaving: QueryInterleaving = 'asc';
  /** Seed of the next `shuffled` response (each response takes the next). */
  shuffleSeed = 1;
  authCount = 0;
  private tokens = new Set<string>();
  private readonly streams = new Set<OpenStream>();
  private readonly sockets = new Set<Socket>();
  private server: http.Server;
  private readonly keepAliveMs: number;

  private constructor(options: FakeActyxOptions) {
    this.keepAliveMs = options.keepAliveMs ?? 15_000;
    this.server = this.createServer();
  }

  static async start(options: FakeActyxOptions = {}): Promise<FakeActyx> {
    const fake = new FakeActyx(options);
    await fake.listen(0);
    return fake;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}/api/v2`;
  }

  get localStream(): string {
    return `${this.nodeId}-0`;
  }

  /** Publishes as the node's own app would (the node's local stream, next Lamport stamp). */
  publish(events: readonly PublishRequest[]): PublishedEvent[] {
    return this.log.appendSync(this.localStream, events);
  }

  /** Events of another device arriving by replication (e.g. one that was offline: old Lamport stamps). */
  replicate(stream: string, events: readonly PublishAsRequest[], options?: PublishAsOptions): PublishedEvent[] {
    return this.log.appendSync(stream, events, options);
  }

  /** Acts on every open streaming response now. */
  interruptStreams(kind: 'drop' | 'end' | 'hang'): number {
    const open = [...this.streams];
    for (const s of open) this.applyInterrupt(s, kind);
    return open.length;
  }

  /** Makes every token invalid: the next request with one gets 401 ERR_TOKEN_EXPIRED. */
  expireTokens(): void {
    this.tokens = new Set();
  }

  /** Stops (all connections die, requests are refused for `downMs`), then comes back with a new node id. */
  async restart(downMs = 20): Promise<void> {
    await this.stop();
    this.nodeId = newNodeId();
    this.tokens = new Set();
    await new Promise((r) => setTimeout(r, downMs));
    this.server = this.createServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    await this.stop();
    await this.log.close();
  }

  private async stop(): Promise<void> {
    for (const s of this.streams) s.abort.abort();
    this.streams.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private listen(port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, '127.0.0.1', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private createServer(): http.Server {
    const server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) sendError(res, 500, 'ERR_INTERNAL', String(err));
        else res.destroy();
      });
    });
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    return server;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0]!.replace(/^\/api\/v2/, '');
    const body = req.method === 'POST' ? await readBody(req) : '';
    if (path === '/auth' && req.method === 'POST') return this.auth(body, res);
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer '))
      return sendError(res, 401, 'ERR_MISSING_AUTH_HEADER', 'missing Authorization header');
    const fault = this.requestFaults.shift();
    if (fault) return sendError(res, fault.status, fault.code, `injected ${fault.code}`);
    if (!this.tokens.has(header.slice(7))) return sendError(res, 401, 'ERR_TOKEN_EXPIRED', 'token expired');
    let json: Record<string, unknown> = {};
    if (body !== '') {
      try {
        json = JSON.parse(body) as Record<string, unknown>;
      } catch {
        return sendError(res, 400, 'ERR_BAD_REQUEST', 'body is not JSON');
      }
    }
    if (path === '/node/id' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(this.nodeId);
    } else if (path === '/events/offsets' && req.method === 'GET') {
      sendJson(res, 200, { present: await this.log.presentOffsets(), toReplicate: {} });
    } else if (path === '/events/publish' && req.method === 'POST') {
      const data = json.data;
      if (!Array.isArray(data)) return sendError(res, 400, 'ERR_BAD_REQUEST', 'data must be an array');
      try {
        sendJson(res, 200, { data: this.publish(data as PublishRequest[]) });
      } catch (err) {
        sendError(res, 400, 'ERR_BAD_REQUEST', (err as Error).message);
      }
    } else if ((path === '/events/subscribe' || path === '/events/query') && req.method === 'POST') {
      await this.stream(path, json, res);
    } else {
      sendError(res, 404, 'ERR_NOT_FOUND', `no route ${req.method} ${path}`);
    }
  }

  private auth(body: string, res: http.ServerResponse): void {
    this.authCount++;
    const fault = this.authFaults.shift();
    if (fault) return sendError(res, fault.status, fault.code, `injected ${fault.code}`);
    let manifest: Record<string, unknown>;
    try {
      manifest = JSON.parse(body) as Record<string, unknown>;
    } catch {
      return sendError(res, 400, 'ERR_BAD_REQUEST', 'body is not JSON');
    }
    const { appId, displayName, version, signature } = manifest;
    if (typeof appId !== 'string' || typeof displayName !== 'string' || typeof version !== 'string') {
      return sendError(res, 400, 'ERR_BAD_REQUEST', 'manifest needs appId, displayName and version');
    }
    if (!appId.startsWith('com.example.') && signature !== 'valid-signature') {
      return sendError(res, 401, 'ERR_MANIFEST_INVALID', 'manifest signature missing or invalid');
    }
    const token = `${this.nodeId}.${randomUUID()}`;
    this.tokens.add(token);
    sendJson(res, 200, { token });
  }

  private async stream(path: string, json: Record<string, unknown>, res: http.ServerResponse): Promise<void> {
    const query = json.query;
    const lowerBound = (json.lowerBound ?? {}) as OffsetMap;
    if (typeof query !== 'string') return sendError(res, 400, 'ERR_BAD_REQUEST', 'query missing');
    try {
      parseQuery(query);
    } catch (err) {
      return sendError(res, 400, 'ERR_BAD_REQUEST', (err as Error).message);
    }
    const present = await this.log.presentOffsets();
    let upperBound: OffsetMap | undefined;
    if (path === '/events/query') {
      if (!['asc', 'desc', 'stream-asc'].includes(json.order as string))
        return sendError(res, 400, 'ERR_BAD_REQUEST', 'order is required');
      upperBound = (json.upperBound as OffsetMap | undefined) ?? present;
      for (const [stream, hi] of Object.entries(upperBound)) {
        if (hi > (offsetOf(present, stream) ?? -1))
          return sendError(res, 400, 'ERR_BAD_REQUEST', `upper bound ${stream}/${hi} is beyond the present`);
      }
    }
    this.streamRequests.push({ path, query, lowerBound, ...(upperBound ? { upperBound } : {}) });
    const fault = this.streamFaults.shift();
    const open: OpenStream = { res, hang: false, abort: new AbortController() };
    this.streams.add(open);
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    const keepAlive = setInterval(() => {
      if (!open.hang && !res.writableEnded) res.write('\n');
    }, this.keepAliveMs);
    const finished = (): void => {
      clearInterval(keepAlive);
      open.abort.abort();
      this.streams.delete(open);
    };
    res.on('close', finished);
    let written = 0;
    /** A `cutLine` fault: the next line is cut in half and the response ends. */
    let pendingCut = false;
    const write = async (line: string): Promise<boolean> => {
      if (res.writableEnded || res.destroyed) return false;
      if (pendingCut) {
        res.end(line.slice(0, Math.max(1, Math.floor(line.length / 2))));
        return false;
      }
      if (!res.write(`${line}\n`)) await new Promise<void>((r) => res.once('drain', r).once('close', r));
      return !res.destroyed;
    };
    /** Applies the fault once `written` reaches its threshold; false = stop writing. */
    const checkFault = async (): Promise<boolean> => {
      if (!fault || fault.kind === 'noOffsets' || written !== fault.afterEvents) return true;
      switch (fault.kind) {
        case 'malformed':
          return write(fault.text ?? '{"type":"event","lamport":');
        case 'warning':
          return write(JSON.stringify({ type: 'diagnostic', severity: 'warning', message: 'injected warning' }));
        case 'error':
          await write(JSON.stringify({ type: 'diagnostic', severity: 'error', message: 'injected error' }));
          res.end();
          return false;
        case 'errorObject':
          await write(JSON.stringify({ code: 'ERR_INTERNAL', message: 'injected stream error' }));
          res.end();
          return false;
        case 'cutLine':
          pendingCut = true;
          return true;
        default:
          // Let what was written reach the client first, as when a connection breaks mid-stream.
          await new Promise((r) => setTimeout(r, 20));
          this.applyInterrupt(open, fault.kind);
          return false;
      }
    };
    try {
      if (!(await checkFault())) return;
      if (path === '/events/query') {
        if (this.queryAnswer === 'empty') {
          res.end();
          return;
        }
        const events: ActyxEvent[] = [];
        for await (const batch of this.log.queryBatches(query, lowerBound, upperBound!, {
          signal: open.abort.signal,
        })) {
          for (const event of batch) events.push(event);
        }
        for (const event of interleave(events, this.queryInterleaving, this.shuffleSeed++)) {
          if (!(await write(JSON.stringify({ type: 'event', ...event })))) return;
          written++;
          if (!(await checkFault())) return;
        }
        if (this.queryAnswer === 'complete' && fault?.kind !== 'noOffsets')
          await write(JSON.stringify({ type: 'offsets', offsets: upperBound }));
        res.end();
        return;
      }
      for await (const batch of this.log.subscribeBatches(query, lowerBound, { signal: open.abort.signal })) {
        for (const item of batch) {
          if (open.hang) return;
          const line =
            item.type === 'event' ? { type: 'event', ...item.event } : { type: 'offsets', offsets: item.offsets };
          if (!(await write(JSON.stringify(line)))) return;
          if (item.type === 'event') {
            written++;
            if (!(await checkFault())) return;
          }
        }
      }
    } finally {
      if (!open.hang && !res.writableEnded && !res.destroyed && path === '/events/query') res.end();
    }
  }

  private applyInterrupt(open: OpenStream, kind: 'drop' | 'end' | 'hang'): void {
    if (kind === 'drop') open.res.destroy();
    else if (kind === 'end') open.res.end();
    else open.hang = true;
  }
}

/** `events` (in Lamport order) reordered as `how` says; each stream keeps its offset order. */
function interleave(events: readonly ActyxEvent[], how: QueryInterleaving, seed: number): ActyxEvent[] {
  if (how === 'asc') return [...events];
  const byStream = new Map<string, ActyxEvent[]>();
  for (const e of events) {
    const list = byStream.get(e.stream) ?? [];
    list.push(e);
    byStream.set(e.stream, list);
  }
  const streams = [...byStream.keys()].sort().reverse();
  if (how === 'byStream') return streams.flatMap((s) => byStream.get(s) as ActyxEvent[]);
  const random = seededRandom(seed);
  const queues = streams.map((s) => byStream.get(s) as ActyxEvent[]);
  const out: ActyxEvent[] = [];
  while (queues.length > 0) {
    const i = Math.floor(random() * queues.length);
    const queue = queues[i] as ActyxEvent[];
    out.push(queue.shift() as ActyxEvent);
    if (queue.length === 0) queues.splice(i, 1);
  }
  return out;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { code, message });
}
