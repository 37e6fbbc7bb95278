/**
 * MariaDB for the chaos cases (harness.ts): a server of the test's own from
 * test/support/mariadb-server.ts, the MariadbDatabase sink (without TLS, so that the proxy can read
 * the protocol), and the client protocol's framing.
 */
import mysql from 'mysql2/promise';
import type { MariadbOptions } from '../../src/sinks/mariadb-connection';
import { MariadbDatabase } from '../../src/sinks/mariadb-database';
import type { TableSpec } from '../../src/sinks/types';
import { offsetRows, rowText } from '../dataflow/support';
import { MariadbServer, mariadbServerUnavailable } from '../support/mariadb-server';
import type { WireProtocol } from './commit-proxy';
import type { ChaosDatabase, ChaosServer } from './harness';

class MariadbChaosServer implements ChaosServer {
  constructor(readonly server: MariadbServer) {}

  get port(): number {
    return this.server.port;
  }

  kill = (): Promise<void> => this.server.kill();
  start = (): Promise<void> => this.server.start();
  pause = (): void => this.server.pause();
  resume = (): void => this.server.resume();
  restartFast = (): Promise<void> => this.server.restartFast();
  destroy = (): Promise<void> => this.server.destroy();
  // The test's own connections never hold a transaction open: every session in one is the sink's.
  endSinkTransactions = (): Promise<number> => this.server.endSessionsInTransactions();
}

const serverOf = (s: ChaosServer): MariadbServer => (s as MariadbChaosServer).server;

/**
 * The client/server protocol: every packet is a 3-byte little-endian payload length, a sequence
 * byte and the payload; a command's payload starts with its code. COMMIT is a COM_QUERY (0x03) with
 * that text: the sink sends BEGIN, COMMIT and ROLLBACK as plain queries. The handshake response
 * starts with capability flags, never followed by the text COMMIT.
 */
export const mariadbWire: WireProtocol = {
  clientMessages() {
    let buffered = Buffer.alloc(0);
    return (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      const out: Buffer[] = [];
      while (buffered.length >= 4) {
        const size = 4 + buffered.readUIntLE(0, 3);
        if (buffered.length < size) break;
        out.push(buffered.subarray(0, size));
        buffered = buffered.subarray(size);
      }
      return out;
    };
  },
  isCommit: (m) => m.length > 4 && m[4] === 0x03 && /^\s*COMMIT\s*;?\s*$/i.test(m.subarray(5).toString('utf8')),
};

async function query(server: ChaosServer, sql: string): Promise<Record<string, unknown>[]> {
  return serverOf(server).withConnection(async (c: mysql.Connection) => {
    const [rows] = await c.query(sql);
    return rows as Record<string, unknown>[];
  });
}

export const mariadbChaos: ChaosDatabase = {
  kind: 'mariadb',
  unavailable: mariadbServerUnavailable,
  async startServer() {
    const server = await MariadbServer.create();
    await server.start();
    return new MariadbChaosServer(server);
  },
  sinkConfig(server, options): MariadbOptions {
    const c = serverOf(server).connection;
    return {
      host: String(c.host),
      port: options.port,
      user: String(c.user),
      password: '',
      database: String(c.database),
      ssl: false,
      connectionTimeoutMs: options.connectTimeoutMs,
      statementTimeoutMs: options.statementTimeoutMs,
    };
  },
  openSink: (config, onIdleError) => new MariadbDatabase({ ...(config as MariadbOptions), onIdleError }),
  async rows(server, table: TableSpec) {
    const cols = table.columns
      .filter((x) => !x.exclude)
      .map((x) => `\`${x.name}\``)
      .join(', ');
    return (await query(server, `SELECT ${cols} FROM \`${table.name}\``)).map(rowText).sort();
  },
  offsets: async (server, table) => offsetRows(await query(server, `SELECT * FROM \`${table}_offsets\``)),
  wire: mariadbWire,
};
