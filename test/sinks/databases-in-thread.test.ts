/**
 * The SinkDatabase contract of databases.test.ts once more, with every SQLite connection in this
 * thread (the `worker: false` mode) instead of a worker thread. The environment variable is the
 * default of SqliteOptions.worker; it must be set before that file's databases are created.
 */
process.env.DELTAFLOW_SQLITE_WORKER = '0';
require('./databases.test');
