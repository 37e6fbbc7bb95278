/**
 * A TCP proxy in front of a database server that cuts connections at a COMMIT: the lost
 * acknowledgement, and the commit that never arrived. It splits what the client sends into the
 * protocol's messages (`WireProtocol`); at each COMMIT message, `plan(n)` (n = COMMITs seen so far)
 * decides:
 *   'pass'   forward it as usual;
 *   'before' close both sides without forwarding it (the transaction never commits);
 *   'after'  forward it, wait for the server's first answer, then close both sides without
 *            forwarding that answer (the transaction committed; the client cannot know).
 */
import net from 'node:net';

/** How one database's client-to-server byte stream splits into messages, and which one is a COMMIT. */
export interface WireProtocol {
  /** A splitter for one connection: takes each chunk the client sends, returns the complete messages in it. */
  clientMessages(): (chunk: Buffer) => Buffer[];
  isCommit(message: Buffer): boolean;
}

export type CommitAction = 'pass' | 'before' | 'after';

export class CommitProxy {
  /** COMMITs seen, and connections cut before and after forwarding one. */
  readonly counts = { commits: 0, before: 0, after: 0 };
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(
    target: { host: string; port: number },
    wire: WireProtocol,
    plan: (n: number) => CommitAction,
  ): Promise<CommitProxy> {
    let proxy!: CommitProxy;
    const server = net.createServer((client) => {
      const upstream = net.connect(target.port, target.host);
      proxy.sockets.add(client).add(upstream);
      const cut = (): void => {
        client.destroy();
        upstream.destroy();
      };
      for (const s of [client, upstream]) {
        s.on('error', cut);
        s.on('close', () => {
          proxy.sockets.delete(s);
          cut();
        });
      }
      let awaitingAnswer = false;
      upstream.on('data', (data) => {
        if (awaitingAnswer) {
          proxy.counts.after++;
          return cut(); // the COMMIT's answer is lost with the connection
        }
        client.write(data);
      });
      const split = wire.clientMessages();
      client.on('data', (chunk) => {
        for (const message of split(chunk)) {
          if (!wire.isCommit(message)) {
            upstream.write(message);
            continue;
          }
          const action = plan(++proxy.counts.commits);
          if (action === 'before') {
            proxy.counts.before++;
            return cut();
          }
          if (action === 'after') awaitingAnswer = true;
          upstream.write(message);
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new CommitProxy(server, (server.address() as net.AddressInfo).port);
    return proxy;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
