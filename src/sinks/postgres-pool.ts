/**
 * A pg Pool whose connections can never raise an unhandled `error` event. pg emits `error` on a
 * client when its connection dies (the server crashed or restarted, the session was terminated, the
 * network dropped it); without a listener that is an uncaught exception, and Node-RED exits. pg-pool
 * listens only while a client is idle in the pool and removes its listener while the client is
 * checked out — exactly while a sink transaction uses it. So every client gets a listener of its
 * own when the pool makes it, kept for its whole life: it records the error, and the user of the
 * checked-out client asks `connectionLost(client)` and fails its transaction with it (which the
 * dataflow retries). Errors of idle clients still reach the pool's `error` event, which discards the
 * client and calls `onIdleError`.
 */
import pg from 'pg';

const lost = new WeakMap<pg.ClientBase, Error>();

/**
 * A pool of `config` that listens to every client's errors.
 *
 * ```ts
 * const pool = openPool({ host: 'db', max: 2 }, (err) => console.warn(`idle connection lost: ${err.message}`));
 * const client = await pool.connect();
 * // … the server dies while the client is checked out: nothing is thrown at the process …
 * const why = connectionLost(client); // the error, e.g. "terminating connection due to administrator command"
 * client.release(why ?? undefined); // a lost connection is discarded, not pooled again
 * ```
 */
export function openPool(config: pg.PoolConfig, onIdleError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on('error', onIdleError);
  // 'connect' is emitted once per new client, in the same turn as its connection completes and before
  // it is handed out (connection failures before that go to the connect callback, not to 'error').
  pool.on('connect', (client) => {
    client.on('error', (err: Error) => markLost(client, err));
  });
  return pool;
}

/** The error that ended this client's connection, or undefined while it is usable. */
export function connectionLost(client: pg.ClientBase): Error | undefined {
  return lost.get(client);
}

/**
 * Records that the client must not be used again (its connection died, or a query got no answer in
 * time and the connection's state is unknown); the first reason wins.
 */
export function markLost(client: pg.ClientBase, err: Error): void {
  if (!lost.has(client)) lost.set(client, err);
}
