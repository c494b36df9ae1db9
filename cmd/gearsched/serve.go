package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/gearman/server"
	"github.com/gearsched/gearsched/gearman/sidecar"
	"github.com/gearsched/gearsched/gearman/sidecar/queuewatch"
	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/lmittmann/tint"
	"github.com/spf13/pflag"
)

// serveConfig is the parsed command line of `gearsched serve`.
type serveConfig struct {
	listen          string
	port            int
	db              string
	store           string // --store: "" (bbolt, --db) or a PostgreSQL URL
	jobRetries      int
	roundRobin      bool
	workerWakeup    int
	exceptions      bool
	handlePrefix    string
	verbose         string
	logFormat       string
	maxPacketSize   int
	maxConnections  int
	shutdownTimeout time.Duration
	schedules       string
	schedZone       *time.Location
	schedWeekdays   string
	tls             tlsFiles // --ssl...: the Gearman port over TLS

	// Sidecar mode.
	upstreams       []string
	passthrough     bool
	triggerPayload  string
	controlSchedule string
	controlCancel   string
	upstreamTimeout time.Duration
	ledgerRetention time.Duration
	upstreamTLS     tlsFiles // --upstream-ssl...
	watchQueues     []queuewatch.Spec

	// HTTP face (http.go).
	httpAddr      string
	httpTokenFile string
	httpToken     string // read from httpTokenFile
}

func parseServe(args []string, stderr io.Writer) (*serveConfig, error) {
	fs := pflag.NewFlagSet("gearsched serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	c := &serveConfig{}
	defPort := 4730
	if v, err := strconv.Atoi(os.Getenv("GEARMAND_PORT")); err == nil {
		defPort = v
	}
	fs.StringVarP(&c.listen, "listen", "L", "127.0.0.1", "address to listen on (gearmand listens on all interfaces; gearsched only on loopback unless told)")
	fs.IntVarP(&c.port, "port", "p", defPort, "port to listen on ($GEARMAND_PORT, else 4730); 0 picks a free one")
	fs.StringVar(&c.db, "db", "gearsched.db", "bbolt database holding background jobs")
	fs.IntVarP(&c.jobRetries, "job-retries", "j", 0, "attempts before a job is failed; 0 or -1 = unlimited, at most 255")
	fs.BoolVarP(&c.roundRobin, "round-robin", "R", false, "rotate a worker's functions after each grab")
	fs.IntVarP(&c.workerWakeup, "worker-wakeup", "w", 0, "sleeping workers woken per new job; 0 = all")
	fs.BoolVar(&c.exceptions, "exceptions", false, "enable the exceptions option on every connection")
	fs.StringVar(&c.handlePrefix, "job-handle-prefix", "", "job handle prefix (default H:<hostname>)")
	fs.StringVar(&c.verbose, "verbose", "INFO", "log level: FATAL, ALERT, CRITICAL, ERROR, WARNING, NOTICE, INFO or DEBUG")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&c.maxPacketSize, "max-packet-size", gearman.DefaultMaxPacketSize, "largest packet payload accepted, in bytes")
	fs.IntVar(&c.maxConnections, "max-connections", 0, "open connections at most; more are told why and closed (0: the file-descriptor limit less 64)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long running jobs may take to finish")
	fs.StringVar(&c.schedules, "schedules", "", "TOML file of recurring schedules (see configs/schedules.toml); SIGHUP reloads it")
	schedZone := fs.String("sched-timezone", "UTC", "IANA time zone SUBMIT_JOB_SCHED fields are read in; recorded with each schedule")
	fs.StringVar(&c.schedWeekdays, "sched-weekdays", "protocol", "SUBMIT_JOB_SCHED day-of-week numbering: protocol (0 = Monday) or cron (0 = Sunday, as appscode/g2 clients send)")
	fs.StringVar(&c.store, "store", "", "sidecar: postgres://user@host:5432/db keeps the sidecar's state in PostgreSQL, shared by several sidecars (default: the bbolt file --db)")
	fs.StringSliceVar(&c.upstreams, "upstream", nil, "sidecar mode: gearmand servers (host[:port], comma-separated) that due jobs are submitted to")
	fs.BoolVar(&c.passthrough, "epoch-passthrough", false, "sidecar: forward future SUBMIT_JOB_EPOCH jobs to gearmand at once and wake them with trigger jobs")
	fs.StringVar(&c.triggerPayload, "trigger-payload", "", "sidecar: data of trigger jobs")
	fs.StringVar(&c.controlSchedule, "control-function", sidecar.DefaultScheduleFunction, "sidecar: function registered upstream to schedule jobs (JSON payload); empty disables the control functions")
	fs.StringVar(&c.controlCancel, "control-cancel-function", sidecar.DefaultCancelFunction, "sidecar: function registered upstream to cancel a scheduled job by handle")
	fs.DurationVar(&c.upstreamTimeout, "upstream-timeout", 5*time.Second, "sidecar: bound on each dial and request to an upstream server")
	fs.DurationVar(&c.ledgerRetention, "ledger-retention", sidecar.DefaultLedgerRetention, "sidecar: how long forwarded jobs are remembered for GET_STATUS")
	registerServerTLS(fs, &c.tls)
	registerUpstreamTLS(fs, &c.upstreamTLS)
	watchQueues := fs.StringArray("watch-queue", nil, "sidecar: wake the epoch jobs in an upstream's persistent queue, UPSTREAM=URL with URL "+
		"sqlite:///path/queue.db, postgres://user:pass@host:5432/db or mysql://user:pass@tcp(host:3306)/db, "+
		"each with an optional ?table= (default gearmand's: gearman_queue, queue, gearman_queue); repeatable")
	fs.StringVar(&c.httpAddr, "http", defaultHTTP, `HTTP address of /metrics, the JSON API, /healthz, /readyz and the web page; "" serves no HTTP`)
	fs.StringVar(&c.httpTokenFile, "http-token-file", "", "file holding the bearer token that HTTP changes (POST, DELETE) and backups need; required off loopback")
	// gearmand options that have no meaning here, accepted so that service
	// files written for gearmand keep working.
	fs.IntP("threads", "t", 4, "ignored (gearmand compatibility)")
	fs.IntP("backlog", "b", 32, "ignored (gearmand compatibility)")
	fs.Int("hashtable-buckets", 991, "ignored (gearmand compatibility)")
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil, err
		}
		return nil, usageError{err}
	}
	if fs.NArg() > 0 {
		return nil, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if c.port < 0 || c.port > 65535 {
		return nil, usageError{fmt.Errorf("--port %d out of range", c.port)}
	}
	if c.jobRetries < -1 || c.jobRetries > 255 {
		return nil, usageError{fmt.Errorf("--job-retries %d out of range (-1 or 0 = unlimited, 1-255)", c.jobRetries)}
	}
	if c.workerWakeup < 0 {
		return nil, usageError{fmt.Errorf("--worker-wakeup %d must not be negative", c.workerWakeup)}
	}
	if c.maxConnections < 0 {
		return nil, usageError{fmt.Errorf("--max-connections %d must not be negative", c.maxConnections)}
	}
	if c.maxPacketSize < 1024 {
		return nil, usageError{fmt.Errorf("--max-packet-size %d too small (at least 1024)", c.maxPacketSize)}
	}
	if _, ok := logLevels[strings.ToUpper(c.verbose)]; !ok {
		return nil, usageError{fmt.Errorf("--verbose %q: not a log level", c.verbose)}
	}
	c.verbose = strings.ToUpper(c.verbose)
	var err error
	if c.schedZone, err = time.LoadLocation(*schedZone); err != nil || *schedZone == "" || *schedZone == "Local" {
		return nil, usageError{fmt.Errorf("--sched-timezone %q: want an IANA zone name such as Europe/Berlin", *schedZone)}
	}
	if c.schedWeekdays != "protocol" && c.schedWeekdays != "cron" {
		return nil, usageError{fmt.Errorf("--sched-weekdays %q: want protocol or cron", c.schedWeekdays)}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return nil, usageError{fmt.Errorf("--log-format %q: want text or json", c.logFormat)}
	}
	if err := c.checkSidecar(fs); err != nil {
		return nil, usageError{err}
	}
	if err := c.checkStore(); err != nil {
		return nil, usageError{err}
	}
	if err := c.checkWatchQueues(*watchQueues); err != nil {
		return nil, usageError{err}
	}
	if err := c.tls.check(fs, "ssl", "ssl-certificate", "ssl-key", "ssl-ca-file"); err != nil {
		return nil, usageError{err}
	}
	if err := c.upstreamTLS.check(fs, "upstream-ssl", "upstream-ssl-certificate", "upstream-ssl-key", "upstream-ssl-ca-file"); err != nil {
		return nil, usageError{err}
	}
	if err := c.checkHTTP(); err != nil {
		return nil, usageError{err}
	}
	return c, nil
}

// checkSidecar validates the sidecar options and completes upstream
// addresses without a port with gearmand's 4730.
func (c *serveConfig) checkSidecar(fs *pflag.FlagSet) error {
	if len(c.upstreams) == 0 {
		for _, name := range []string{"epoch-passthrough", "trigger-payload", "control-function", "control-cancel-function", "upstream-timeout", "ledger-retention", "watch-queue", "upstream-ssl"} {
			if fs.Changed(name) {
				return fmt.Errorf("--%s needs --upstream", name)
			}
		}
		return nil
	}
	for i, a := range c.upstreams {
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, "4730")
		}
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--upstream %q: want host:port", c.upstreams[i])
		}
		c.upstreams[i] = a
	}
	if c.upstreamTimeout <= 0 {
		return fmt.Errorf("--upstream-timeout %s must be positive", c.upstreamTimeout)
	}
	if c.ledgerRetention <= 0 {
		return fmt.Errorf("--ledger-retention %s must be positive", c.ledgerRetention)
	}
	if c.controlSchedule != "" && c.controlSchedule == c.controlCancel {
		return fmt.Errorf("--control-function and --control-cancel-function are both %q", c.controlSchedule)
	}
	return nil
}

// logLevels maps gearmand's level names onto slog's.
var logLevels = map[string]slog.Level{
	"FATAL": slog.LevelError, "ALERT": slog.LevelError, "CRITICAL": slog.LevelError, "ERROR": slog.LevelError,
	"WARNING": slog.LevelWarn, "NOTICE": slog.LevelInfo, "INFO": slog.LevelInfo, "DEBUG": slog.LevelDebug,
}

func newLogger(format string, level slog.Leveler, w *os.File) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
	}
	fi, err := w.Stat()
	tty := err == nil && fi.Mode()&os.ModeCharDevice != 0
	return slog.New(tint.NewTextHandler(w, &tint.Options{Level: level, NoColor: !tty, TimeFormat: time.RFC3339Nano}))
}

// serve runs the job server until ctx is cancelled (SIGINT or SIGTERM).
func serve(ctx context.Context, args []string, stderr io.Writer) error {
	c, err := parseServe(args, stderr)
	if err != nil {
		return err
	}
	level := new(slog.LevelVar)
	level.Set(logLevels[c.verbose])
	log := newLogger(c.logFormat, level, os.Stderr)
	version := readBuildInfo().String()

	stls, err := newServerTLS(&c.tls)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	handles, err := server.NewHandles(st, c.handlePrefix)
	if err != nil {
		return err
	}
	var sched *scheduler.Scheduler
	wake := func() { sched.Wake() }
	side, err := newSidecar(c, st, handles, log, wake, func(due int64) { sched.WakeFor(due) })
	if err != nil {
		return err
	}
	srv, err := server.New(server.Config{
		Store:             st,
		Logger:            log,
		Handles:           handles,
		JobRetries:        c.jobRetries,
		RoundRobin:        c.roundRobin,
		WorkerWakeup:      c.workerWakeup,
		Exceptions:        c.exceptions,
		MaxPacketSize:     c.maxPacketSize,
		MaxConnections:    connectionLimit(c.maxConnections, log),
		Version:           version,
		TLS:               stls.config(),
		LogLevel:          func() string { return c.verbose },
		Wake:              func(due int64) { sched.WakeFor(due) },
		SchedZone:         c.schedZone,
		SchedCronWeekdays: c.schedWeekdays == "cron",
		Upstreams:         side.upstreams(),
		Passthrough:       c.passthrough,
	})
	if err != nil {
		return damageHint(err, c.db)
	}
	var sink scheduler.Sink = srv
	if side != nil {
		sink = side.fwd
	}
	sched = scheduler.New(scheduler.Config{Store: st, Sink: sink, Logger: log, Shared: st.shared})
	if c.schedules != "" {
		if err := loadSchedules(c.schedules, st, handles, log); err != nil {
			return damageHint(err, c.db)
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(c.listen, strconv.Itoa(c.port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("gearsched serving", "version", version, "addr", ln.Addr().String(), "db", c.db, "pid", os.Getpid(),
		"upstreams", c.upstreams, "tls", c.tls.enabled)
	web, err := startHTTP(c, httpParts{st: st, srv: srv, sched: sched, side: side, version: version}, log)
	if err != nil {
		ln.Close()
		return err
	}
	defer web.stopHTTP() // stopped before the store closes: handlers read it

	// The scheduler and the sidecar's loops stop before the listener
	// drains, so nothing is released into a server that is shutting down.
	bgCtx, stopBackground := context.WithCancel(context.Background())
	var background sync.WaitGroup
	background.Go(func() { sched.Run(bgCtx) })
	if st.listen != nil {
		background.Go(func() { st.listen(bgCtx, sched.WakeFor) })
	}
	side.start(bgCtx, &background, srv)
	stopSched := func() {
		stopBackground()
		background.Wait()
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// The store is open and the listener up: systemd may start what
	// depends on this unit. The watchdog pings until serve returns.
	sd := systemd{log: log}
	sd.ready(ln.Addr().String())
	wdCtx, stopWatchdog := context.WithCancel(context.Background())
	var watchdog sync.WaitGroup
	sd.watchdog(wdCtx, &watchdog)
	defer func() {
		stopWatchdog()
		watchdog.Wait()
	}()
	for done := false; !done; {
		select {
		case err = <-served:
			sd.stopping()
			stopSched()
			srv.Shutdown(context.Background())
			return err
		case <-hup:
			if stls != nil {
				if err := stls.reload(); err != nil {
					log.Error("TLS files rejected; keeping the certificates in use", "err", err)
				} else {
					log.Info("TLS certificate, key and CA files read again")
				}
			}
			if c.schedules == "" {
				log.Info("SIGHUP: no --schedules file to reload")
			} else if err := loadSchedules(c.schedules, st, handles, log); err != nil {
				log.Error("schedules file rejected; keeping the running schedules", "file", c.schedules, "err", err)
			} else {
				sched.Wake()
			}
		case <-ctx.Done():
			done = true
		}
	}
	sd.stopping()
	log.Info("shutting down", "timeout", c.shutdownTimeout)
	stopSched()
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	srv.Shutdown(sctx)
	if err := <-served; err != nil {
		log.Warn("listener ended with an error", "err", err)
	}
	web.stopHTTP()
	if err := st.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	log.Info("stopped")
	return nil
}

// damageHint adds to an error that a damaged database caused at start-up
// (a page bbolt cannot read, met after Open's checks) what to do about it.
func damageHint(err error, db string) error {
	if !errors.Is(err, store.ErrDamaged) {
		return err
	}
	return fmt.Errorf("%w. Run `gearsched check --db %s`, then `gearsched salvage %s NEW.db` and serve NEW.db", err, db, db)
}

// fdReserve is how many file descriptors the automatic connection limit
// leaves for the database, the upstream servers, logs and the listener.
const fdReserve = 64

// connectionLimit returns --max-connections, or when it is 0 the process's
// file-descriptor limit less fdReserve (Go raises the soft limit to the
// hard one at start), so that running out of descriptors refuses clients
// politely instead of failing accepts and writes.
func connectionLimit(flag int, log *slog.Logger) int {
	if flag > 0 {
		return flag
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the file-descriptor limit; connections are not limited", "err", err)
		return 0
	}
	if lim.Cur > 1<<30 { // unlimited, or as good as
		return 0
	}
	return max(int(lim.Cur)-fdReserve, 1)
}

// loadSchedules reads the schedules file and applies it; an invalid file
// changes nothing.
func loadSchedules(path string, st scheduler.ScheduleStore, handles *server.Handles, log *slog.Logger) error {
	defs, err := scheduler.LoadFile(path)
	if err != nil {
		return err
	}
	res, err := scheduler.Sync(st, defs, time.Now(), handles.Next)
	if err != nil {
		return fmt.Errorf("apply %s: %w", path, err)
	}
	log.Info("schedules loaded", "file", path, "added", res.Added, "changed", res.Changed,
		"removed", res.Removed, "unchanged", len(res.Unchanged))
	if len(defs) == 0 && len(res.Removed) > 0 {
		log.Warn("the schedules file has no schedules: every file schedule was removed", "file", path,
			"removed", len(res.Removed))
	}
	return nil
}
