/** The errors the sinks throw; each names the table (and the offending item) in its message. */

/** A configuration problem (bad identifier, SQL type, property path, missing key, …). */
export class SinkConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SinkConfigError';
  }
}

/**
 * Rows that the table's mode cannot hold, e.g. two different rows for one key of a keyed table in
 * one batch, or a NULL key. Retrying does not help: the upstream logic must change.
 */
export class SinkDataError extends Error {
  constructor(
    readonly table: string,
    message: string,
  ) {
    super(`table "${table}": ${message}`);
    this.name = 'SinkDataError';
  }
}

/**
 * The database failed; `retryable` is true for connection loss, lock timeouts, serialization
 * failures and configuration the user can fix while it runs (a server not up yet, a role, database
 * or privilege missing). `hint`, when set, says in a few words what to set or do — for a node status.
 */
export class SinkDatabaseError extends Error {
  readonly hint: string | undefined;

  constructor(
    readonly database: string,
    readonly table: string | null,
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown; hint?: string },
  ) {
    super(`${database}${table ? `, table "${table}"` : ''}: ${message}`, options);
    this.name = 'SinkDatabaseError';
    this.hint = options?.hint;
  }
}
