/**
 * PostgreSQL for the chaos cases (harness.ts): a server of the test's own from
 * test/support/postgres-server.ts, the PostgresDatabase sink, and the frontend protocol's framing.
 */
import { PostgresDatabase, type PostgresOptions } from '../../src/sinks/postgres-database';
import { pgOffsets, pgRows } from '../dataflow/support';
import { PostgresServer, postgresServerUnavailable } from '../support/postgres-server';
import type { WireProtocol } from './commit-proxy';
import type { ChaosDatabase, ChaosServer } from './harness';

class PostgresChaosServer implements ChaosServer {
  constructor(readonly server: PostgresServer) {}

  get port(): number {
    return this.server.port;
  }

  kill = (): Promise<void> => this.server.kill();
  start = (): Promise<void> => this.server.start();
  pause = (): void => this.server.pause();
  resume = (): void => this.server.resume();
  restartFast = (): Promise<void> => this.server.restartFast();
  destroy = (): Promise<void> => this.server.destroy();

  async endSinkTransactions(): Promise<number> {
    const rows = await this.server.query(
      `SELECT pg_terminate_backend(pid) AS ended FROM pg_stat_activity
        WHERE application_name = 'deltaflow' AND xact_start IS NOT NULL AND pid <> pg_backend_pid()`,
    );
    return rows.filter((r) => r.ended === true).length;
  }
}

const serverOf = (s: ChaosServer): PostgresServer => (s as PostgresChaosServer).server;

/**
 * The frontend protocol: after the untyped startup packets (length first; an SSL or GSS encryption
 * request is followed by another), each message is a type byte and a length that counts itself.
 * COMMIT is a simple query ('Q'): the sink sends BEGIN, COMMIT and ROLLBACK that way.
 */
export const postgresWire: WireProtocol = {
  clientMessages() {
    let buffered = Buffer.alloc(0);
    let startup = true;
    return (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const out: Buffer[] = [];
      for (;;) {
        const head = startup ? 0 : 1;
        if (buffered.length < head + 4) break;
        const size = head + buffered.readInt32BE(head);
        if (buffered.length < size) break;
        const message = buffered.subarray(0, size);
        buffered = buffered.subarray(size);
        // 80877103: SSLRequest, 80877104: GSSENCRequest; anything else is the startup message.
        if (startup) startup = [80877103, 80877104].includes(message.readInt32BE(4));
        out.push(message);
      }
      return out;
    };
  },
  isCommit: (m) => m[0] === 0x51 && /^\s*COMMIT\s*;?\s*$/i.test(m.subarray(5, m.length - 1).toString('utf8')),
};

export const postgresChaos: ChaosDatabase = {
  kind: 'postgres',
  unavailable: postgresServerUnavailable,
  async startServer() {
    const server = await PostgresServer.create();
    await server.start();
    return new PostgresChaosServer(server);
  },
  sinkConfig(server, options): PostgresOptions {
    return {
      ...serverOf(server).connection,
      port: options.port,
      connectionTimeoutMs: options.connectTimeoutMs,
      statementTimeoutMs: options.statementTimeoutMs,
    };
  },
  openSink: (config, onIdleError) => new PostgresDatabase({ ...(config as PostgresOptions), onIdleError }),
  rows: (server, table) => pgRows(table, serverOf(server).connection),
  offsets: (server, table) => pgOffsets(table, serverOf(server).connection),
  wire: postgresWire,
};
