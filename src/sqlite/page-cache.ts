/**
 * How much page cache an SQLite connection may keep. better-sqlite3 builds SQLite with
 * SQLITE_DEFAULT_CACHE_SIZE=-16000: every connection may hold 16 MB of pages, in malloc outside
 * V8's heap (so `--max-old-space-size` does not bound it), and keeps them until it closes. A
 * catch-up has up to seven connections (the log's, two read-ahead workers', two checkpointers',
 * the sink's and its state reader's); those that scan (the read-ahead workers) or look up one
 * row at a time in a table larger than any cache (the durable state reader) filled their 16 MB
 * once the files were past that size: with the read-ahead workers' young generations
 * (page-prefetcher.ts), 57 MB of the peak RSS of a 1M catch-up (BENCHMARKS.md, 2026-12-07).
 * They get SQLite's own default, 2 MB: enough for the B-tree's upper levels, which each lookup
 * touches; the leaves they read once stay in the operating system's file cache.
 * The sink's writing connection keeps more, WRITER_CACHE_KIB below.
 */
export const READER_CACHE_KIB = 2000;

/** The pragma (for `db.pragma(…)`) that bounds a reading connection's page cache. */
export const READER_CACHE_PRAGMA = `cache_size = -${READER_CACHE_KIB}`;

/**
 * The sink's writing connection: 4 MB. Its cache holds the upper levels of the B-trees it writes
 * and the pages a commit changes (beyond it SQLite spills changed pages to the WAL early). Against
 * 16 MB, 1M events of the example flows' catch-up with the state in the database, two pairs under
 * the benchmark lock: peak RSS 380 / 365 → 354 / 357 MB, catch-up time 1.10× and 0.92× (no change
 * beyond the VM's noise; BENCHMARKS.md, 2026-12-07).
 */
export const WRITER_CACHE_KIB = 4000;

/** The pragma that bounds the writing connection's page cache. */
export const WRITER_CACHE_PRAGMA = `cache_size = -${WRITER_CACHE_KIB}`;
