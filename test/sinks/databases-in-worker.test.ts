/**
 * The SinkDatabase contract of databases.test.ts once more, with every SQLite connection in a
 * worker thread (the `worker: true` mode) instead of this thread. The environment variable is the
 * default of SqliteOptions.worker; it must be set before that file's databases are created.
 */
process.env.DELTAFLOW_SQLITE_WORKER = '1';
require('./databases.test');
