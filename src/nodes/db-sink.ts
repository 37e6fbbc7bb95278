/**
 * `db-sink`: writes the consolidated output of the dataflow nodes wired into it to one table of a
 * db-config database. The node only describes the table and joins its dd-dataflow; the coordinator
 * creates the table, applies the changes with the offsets in one transaction, and after each commit
 * sends `{payload: RowChange[], offsets, table}` from this node.
 */
import { errorText } from '../core/message-text';
import type { Value } from '../engine/types';
import type { ColumnSpec, TableSpec } from '../sinks/types';
import { compileTable } from '../sinks/table-spec';
import { acquireDatabase, TableClaimError, type DatabaseLease } from './db-access';
import {
  findDataflow,
  leaveDataflow,
  NO_DATAFLOW_SELECTED,
  problemReporter,
  type DataflowConfigNode,
} from './dataflow-membership';
import { DATAFLOW_MESSAGE_MARKER, memberLabel } from './dd-operator';
import { compileRecordFunction, UserCodeError } from './user-function';
import { columnsAreBodies, expressionToBody, fingerprintSource } from './column-javascript';
import type { Node, NodeAPI, NodeDef, NodeMessage } from './red';

/** A column as the editor stores it in the flow. */
export interface ColumnConfig {
  readonly name: string;
  readonly type: string;
  /**
   * `path`: a property path of the record; `js`: JavaScript of `record`, a function body (or, in a
   * node without `columnJs: 'body'`, saved by 0.1.x, an expression).
   */
  readonly source: 'path' | 'js';
  readonly value: string;
  readonly index?: boolean;
  readonly key?: boolean;
  readonly exclude?: boolean;
}

/** A column expression threw on a record: the cell becomes NULL and the node reports it. */
export type ExpressionFailure = (column: string, record: Value, error: unknown) => void;

function asColumns(raw: unknown): ColumnConfig[] {
  if (!Array.isArray(raw)) return [];
  return raw.map((c: Record<string, unknown>) => ({
    name: typeof c?.name === 'string' ? c.name.trim() : (c?.name as string),
    type: typeof c?.type === 'string' ? c.type : '',
    source: c?.source === 'js' ? 'js' : 'path',
    value: typeof c?.value === 'string' ? c.value : '',
    index: c?.index === true,
    key: c?.key === true,
    exclude: c?.exclude === true,
  }));
}

/**
 * The table a db-sink config describes, validated (SinkConfigError, UserCodeError with a clear
 * message). JavaScript is compiled once here; excluded columns need no value. `definition`: the
 * columns as the fingerprint sees them (a JavaScript column by its expression where it has one, so
 * a flow whose expressions the editor turned into bodies keeps its tables).
 */
export function tableFromConfig(
  RED: NodeAPI,
  node: Node,
  config: NodeDef,
  onFailure: ExpressionFailure,
): { table: TableSpec; columns: ColumnConfig[]; definition: Value } {
  const columns = asColumns(config.columns);
  const bodies = columnsAreBodies(config.columnJs);
  const mode =
    config.mode === 'keyed'
      ? 'keyed'
      : config.mode === 'multiset' || config.mode === undefined
        ? 'multiset'
        : (config.mode as 'multiset');
  const specs: ColumnSpec[] = columns.map((c) => {
    let value: ColumnSpec['value'];
    if (c.exclude) value = { fn: () => null };
    else if (c.source === 'js') {
      if (c.value.trim() === '')
        throw new UserCodeError(`column "${c.name}": the JavaScript ${bodies ? '' : 'expression '}is empty`);
      const fn = compileRecordFunction(
        RED,
        node,
        { language: 'js', text: bodies ? c.value : expressionToBody(c.value) },
        ['js'],
        `column "${c.name}"`,
      );
      value = {
        fn: (record: Value): unknown => {
          try {
            return fn(record);
          } catch (err) {
            onFailure(c.name, record, err);
            return null;
          }
        },
      };
    } else value = { path: c.value };
    return { name: c.name, type: c.type, value, index: c.index, key: c.key, exclude: c.exclude };
  });
  const table: TableSpec = {
    name: typeof config.table === 'string' ? config.table.trim() : (config.table as string),
    mode,
    columns: specs,
  };
  compileTable(table); // throws SinkConfigError naming the bad part
  // NB: a flow saved by 0.1.x (expressions) must keep the definition it had then, or every such
  // table would be rebuilt on upgrade: test/nodes/js-convention.test.ts checks it.
  const definition = columns.map((c) =>
    c.source === 'js' && bodies ? { ...c, ...fingerprintSource(c.value) } : { ...c },
  ) as unknown as Value;
  return { table, columns, definition };
}

export default function (RED: NodeAPI): void {
  function DbSinkNode(this: Node, config: NodeDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const label = memberLabel(config);
    const fail = problemReporter(node);

    const reportExpression: ExpressionFailure = (column, record, error) => {
      const why = errorText(error);
      node.error(`column "${column}": the expression failed on a record, the cell is NULL: ${why}`, {
        payload: record,
      });
    };

    /** Validates the config and joins the dataflow; on a problem reports it and joins nothing. */
    const setup = (): { dataflow: DataflowConfigNode; lease: DatabaseLease } | null => {
      let built: ReturnType<typeof tableFromConfig>;
      try {
        built = tableFromConfig(RED, node, config, reportExpression);
      } catch (err) {
        fail(err instanceof UserCodeError ? 'invalid expression' : 'invalid config', errorText(err));
        return null;
      }
      const dataflow = findDataflow(RED, config.dataflow);
      if (!dataflow) {
        fail('no dataflow', NO_DATAFLOW_SELECTED);
        return null;
      }
      let lease: DatabaseLease | null;
      try {
        lease = acquireDatabase(RED, config.database, {
          table: built.table.name,
          owner: `db-sink "${label}" (${config.id})`,
        });
      } catch (err) {
        fail(err instanceof TableClaimError ? 'table in use' : 'database config error', errorText(err));
        return null;
      }
      if (!lease) {
        fail('no database', 'no database selected: choose a db-config node in the node settings');
        return null;
      }
      const { table, definition } = built;
      dataflow.join(node, {
        role: 'sink',
        id: config.id,
        type: 'db-sink',
        label,
        definition: { table: table.name, mode: table.mode, columns: definition },
        database: lease.database,
        table,
        version: typeof config.version === 'string' ? config.version.trim() : String(config.version ?? ''),
        // Committed changes are built only for a wired output (not part of the logic: no fingerprint).
        reportChanges: (config.wires ?? []).some((port) => port.length > 0),
      });
      return { dataflow, lease };
    };
    const joined = setup();

    node.on('input', (msg: NodeMessage, _send, done) => {
      // Changes a tapped dd node sent after a commit: the engine already delivered them to this sink.
      if (msg[DATAFLOW_MESSAGE_MARKER] !== undefined) return done();
      done(new Error(`db-sink writes what its dataflow computes; messages from other nodes are ignored`));
    });

    node.on('close', (_removed: boolean, done: () => void) => {
      if (!joined) return done();
      // Release the database only once the dataflow no longer uses this sink (a commit may be running).
      leaveDataflow(joined.dataflow, node)
        .then(() => joined.lease.release())
        .catch((err: unknown) => node.warn(`releasing the database failed: ${errorText(err)}`))
        .finally(done);
    });
  }
  RED.nodes.registerType('db-sink', DbSinkNode);
}
