// Package queuewatch wakes the epoch jobs that gearmand holds in its
// persistent queue. gearmand 1.1.x keeps a SUBMIT_JOB_EPOCH job with its
// when_to_run, in memory and in the queue table, but hands it out only
// when a worker grabs after its time, and sleeping workers never grab
// (docs/gearmand-differences.md, D1). Jobs that reach gearmand without the
// sidecar (clients pointed at gearmand, or rows a restart replays) are
// seen only in that table, so a Watcher reads it and stores a trigger job
// for each (upstream, function, second) it finds; the sidecar's forwarder
// submits the trigger 20 ms after the second, exactly as for the epoch jobs
// it passes through itself (--epoch-passthrough).
//
// # Reading the table
//
// gearmand's tables (SQLite gearman_queue, PostgreSQL queue, MySQL
// gearman_queue by default) have the columns unique_key, function_name,
// priority, data and when_to_run (0 = at once, else unix seconds), and
// only a (unique_key, function_name) key: nothing orders rows by time,
// and the watcher adds no index, since the table is gearmand's. The
// database filters and counts: only the rows the watcher may register
// (due within its horizon, above the seconds it has handled) are
// returned, with a count of the rows with a time and the earliest future
// time, so the rows further ahead, most of a big table, never reach Go.
// Reading never gets in gearmand's way:
//
//   - SQLite: the file is opened read-only with a busy timeout, on one
//     connection. Rows are read by rowid in chunks of sqliteChunk rows,
//     one statement each, outside any transaction, so a COMMIT of
//     gearmand waits at most one short statement in rollback-journal
//     mode and never in WAL mode. SQLite gives a new row the largest
//     rowid plus one, so between full passes a poll (every 250 ms) reads
//     the rows above the highest rowid seen, and nothing at all when
//     PRAGMA data_version says nobody committed; anchors (a few rows
//     below the top, checked unchanged) find the new rows that took the
//     rowids of deleted ones (sqlite.go). New rows are noticed within a
//     poll, whatever the table's size.
//   - PostgreSQL and MySQL: plain SELECTs, consistent reads that take no
//     lock a writer waits for (the session is read-only on PostgreSQL).
//     Neither table can hand over just its new rows without the database
//     scanning it (mvccnew.go says why), so every 250 ms a poll asks a
//     cheap question first, whether anyone committed (PostgreSQL: the
//     snapshot changed; MySQL: the server's write counters moved), and
//     only then has the database scan for the rows within the horizon
//     that may be new (PostgreSQL: by xmin). The scan is the database's
//     CPU; only the rows it returns are the watcher's. Those scans are
//     paced at 3 times their duration, so a database written to all the
//     time gives the watcher at most a quarter of one core.
//
// Full passes are paced by their cost: the next starts 50 times the last
// one's duration after it ended, at least 10 s apart (polls see new rows
// between them) and at most 5 minutes, so passes cost about 2 % of one
// core however large the table is (on PostgreSQL and MySQL the duration,
// and so the cost paced, is mostly the database's scan).
// An event that asks for a pass at once (the upstream reconnected, the
// database recovered, a poll lost track of new rows) brings it forward
// to 20 times the last duration at the soonest, so that an upstream that
// keeps reconnecting cannot keep passes running.
//
// # Memory
//
// No rows are kept. A scan registers the (function, second) pairs due
// within its horizon (three gaps between full passes, at least a minute
// ahead) that it has not registered before, and stores them in batches
// of 1,000. The watcher remembers the pairs it registered above a mark
// below which every second was handled by a complete pass; the mark
// follows the clock, so the memory holds the distinct seconds with jobs
// in the next few minutes only, and at most Config.MaxKeys of them (rows
// beyond wait for a later scan). Rows further ahead are read again by
// later passes until they come within the horizon.
//
// # Rows whose time has passed
//
// After start-up, after the upstream reconnects (gearmand may have
// restarted and replayed its table) and after the database recovers from
// a failure, the next full pass cannot know whether the rows whose time
// passed were woken, so it stores one trigger per function that has such
// rows, due at once. Otherwise a past row is triggered only if no earlier
// pass could have seen it.
//
// # Ownership and cancellation
//
// The watcher writes the sidecar's store only through store.PutTriggers,
// which runs in the committer's transaction and creates a trigger only if
// none is pending for its (upstream, function, second), else adds to that
// trigger's watch list: the watcher, the forwarder's passthrough jobs and
// a restart of either never make two triggers for one key. Queue rows have
// no gearmand job handle, so a trigger watches up to store.MaxWatch of its
// jobs by unique (sidecar.UniqueWatch): the forwarder polls them with
// GET_STATUS_UNIQUE, cancels the trigger once one is running or gone, and
// sends another while they still wait after the trigger was taken
// (gearmand's clock behind). Jobs without a unique, or with one of 64
// bytes (which gearmand never answers), are woken but not watched.
package queuewatch
