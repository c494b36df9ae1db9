// Package server is a Gearman job server. It speaks the whole protocol,
// binary packets and admin text, to clients, workers and gearadmin; it
// stores background jobs durably before acknowledging them; and, as the
// scheduler's Sink, it turns jobs and schedule occurrences that fall due
// into ready jobs. With Config.Upstreams set it is a sidecar's listener
// instead: it holds submissions until the sidecar's forwarder has them on
// an upstream gearmand, and serves no workers.
//
// Where things are:
//
//   - server.go: Server, Config, shutdown; accept.go: accepting connections;
//     tls.go: the TLS handshake and TLS connections.
//   - conn.go: one connection: its read loop, pending acknowledgements, output.
//   - dispatch.go: the job server's packet table (one row per packet type),
//     worker registration, status queries; hold.go: the sidecar listener's.
//   - submit.go: submissions, coalescing by unique, acknowledgement.
//   - work.go: grabbing jobs, work results, requeues, cancelling.
//   - queue.go: jobs in memory, per-function queues.
//   - admin.go: the admin text commands.
//   - scheduled.go: jobs waiting for their time and schedules: the Sink,
//     SUBMIT_JOB_SCHED, Schedule and Cancel; request.go: schedule requests.
//   - handles.go: job handles.
//   - store.go: the Store interface: bbolt, or a sidecar's shared
//     PostgreSQL (package pgstore).
//
// Ownership: the jobs in memory, the queues and the connections' server
// state belong to Server.mu, which is never held across disk or network
// I/O; what waits in the store belongs to the store (see package
// scheduler). A connection's output buffer has its own leaf lock.
package server
