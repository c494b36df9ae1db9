// Package sidecar runs gearsched beside existing gearmand servers. It keeps
// one connection to each (Upstream), submits due jobs and schedule
// occurrences to them (Forwarder, the scheduler's Sink and the listener's
// Upstreams), wakes the epoch jobs it passed through to gearmand with
// trigger jobs, and serves the control functions through which any
// Gearman client schedules jobs via gearmand (Control).
//
// An item counts as fired only once gearmand answered JOB_CREATED and the
// store recorded it in the fire ledger; until then it stays due.
package sidecar
