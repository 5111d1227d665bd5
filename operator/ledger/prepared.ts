// Kept apart from db.ts so that trace-direct.ts, which loads neither kysely nor
// db.ts, can write the same statements.

/**
 * A query whose text begins with this comment is sent to PostgreSQL as a named
 * prepared statement (db.ts): each connection parses it once, and after five
 * executions PostgreSQL keeps a generic plan if it costs no more than the
 * ones made for the parameters. For the few hot read statements whose
 * planning costs as much as their execution: the trace's, a join over the
 * seven span classes, took 0.30 ms to plan at p50 against 0.29 ms to run
 * (1M intervals); its generic plan is the same index ranges, whatever the
 * address. SQLite needs no mark: sqlite-driver.ts keeps every statement
 * prepared, by its text.
 */
export const PREPARED = '/* prepared */ ';
