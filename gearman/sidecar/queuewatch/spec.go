package queuewatch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// Backends, as named in `show queues`.
const (
	BackendSQLite   = "sqlite"
	BackendPostgres = "postgres"
	BackendMySQL    = "mysql"
)

// Default table names: gearmand 1.1.20's own defaults for --libsqlite3-table,
// --libpq-table and --mysql-table.
var defaultTables = map[string]string{
	BackendSQLite:   "gearman_queue",
	BackendPostgres: "queue",
	BackendMySQL:    "gearman_queue",
}

// Spec is one parsed --watch-queue value: which upstream gearmand writes
// the queue, and where the queue is.
type Spec struct {
	// Upstream is the gearmand server (host:port) whose queue this is; its
	// trigger jobs are pinned to it.
	Upstream string
	// Backend is BackendSQLite, BackendPostgres or BackendMySQL.
	Backend string
	// Table is the queue table, as gearmand names it (unquoted).
	Table string
	// Location is the URL without its password, for logs.
	Location string
	// dsn is what the database/sql driver opens.
	dsn string
}

// identifier is what the table may be: gearmand puts the name into its
// SQL unquoted, so the watcher does the same and accepts only names that
// need no quoting (PostgreSQL may add a schema).
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$`)

// ParseSpec parses UPSTREAM=URL, where URL is one of
//
//	sqlite://PATH[?table=T]                                (PATH as gearmand's --libsqlite3-db)
//	postgres://USER:PASS@HOST:PORT/DB[?table=T&sslmode=…]  (also postgresql://; libpq's URL)
//	mysql://USER:PASS@tcp(HOST:PORT)/DB[?table=T]          (Go MySQL driver's DSN after mysql://)
//	mysql://USER:PASS@HOST:PORT/DB[?table=T]               (the same as a plain URL)
//
// table defaults to gearmand's default for the backend. UPSTREAM gets
// port 4730 when it has none, as --upstream does.
func ParseSpec(s string) (Spec, error) {
	up, loc, ok := strings.Cut(s, "=")
	if !ok || up == "" || loc == "" {
		return Spec{}, fmt.Errorf("%q: want UPSTREAM=URL, e.g. 127.0.0.1:4730=sqlite:///var/lib/gearman/queue.db", s)
	}
	up, err := NormalizeAddr(up)
	if err != nil {
		return Spec{}, err
	}
	scheme, rest, ok := strings.Cut(loc, "://")
	if !ok {
		return Spec{}, fmt.Errorf("%q: the queue URL needs a scheme: sqlite://, postgres:// or mysql://", loc)
	}
	sp := Spec{Upstream: up}
	switch strings.ToLower(scheme) {
	case "sqlite", "sqlite3":
		err = sp.parseSQLite(rest)
	case "postgres", "postgresql":
		err = sp.parsePostgres(loc)
	case "mysql", "mariadb":
		err = sp.parseMySQL(rest)
	default:
		err = fmt.Errorf("unknown scheme %q: want sqlite, postgres or mysql", scheme)
	}
	if err != nil {
		return Spec{}, fmt.Errorf("queue of %s: %w", up, err)
	}
	if sp.Table == "" {
		sp.Table = defaultTables[sp.Backend]
	}
	if !identifier.MatchString(sp.Table) || (sp.Backend != BackendPostgres && strings.Contains(sp.Table, ".")) {
		return Spec{}, fmt.Errorf("queue of %s: table %q: want a plain SQL name (letters, digits, _)", up, sp.Table)
	}
	return sp, nil
}

// NormalizeAddr returns host:port, with gearmand's port 4730 when addr has
// none: the form --upstream takes.
func NormalizeAddr(addr string) (string, error) {
	a := addr
	if _, _, err := net.SplitHostPort(a); err != nil {
		a = net.JoinHostPort(a, "4730")
	}
	host, port, err := net.SplitHostPort(a)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("upstream %q: want host:port", addr)
	}
	return a, nil
}

// takeTable removes the table parameter from q and returns it.
func takeTable(q url.Values) string {
	t := q.Get("table")
	q.Del("table")
	return t
}

func (sp *Spec) parseSQLite(rest string) error {
	sp.Backend = BackendSQLite
	path, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("sqlite parameters: %w", err)
	}
	sp.Table = takeTable(q)
	if len(q) > 0 {
		return fmt.Errorf("sqlite: unknown parameters %q (only table)", q.Encode())
	}
	if path == "" {
		return errors.New("sqlite: no database file: want sqlite:///path/to/queue.db")
	}
	sp.Location = "sqlite://" + path
	// Read-only, and a busy timeout so that a moment when gearmand holds
	// the write lock is waited out instead of failing the read. The
	// immutable flag is never used: gearmand changes the file under us.
	sp.dsn = (&url.URL{Scheme: "file", Opaque: url.PathEscape(path), RawQuery: url.Values{
		"mode":    {"ro"},
		"_pragma": {"busy_timeout(2000)", "query_only(1)"},
	}.Encode()}).String()
	return nil
}

func (sp *Spec) parsePostgres(loc string) error {
	sp.Backend = BackendPostgres
	u, err := url.Parse(loc)
	if err != nil {
		return fmt.Errorf("postgres URL: %w", err)
	}
	q := u.Query()
	sp.Table = takeTable(q)
	// The session cannot write, whatever the user's grants; it is named
	// in pg_stat_activity; and its scans stay in its own process rather
	// than taking parallel workers from the database's queries.
	for k, v := range map[string]string{"default_transaction_read_only": "on", "application_name": "gearsched-queuewatch",
		"max_parallel_workers_per_gather": "0"} {
		if !q.Has(k) {
			q.Set(k, v)
		}
	}
	u.RawQuery = q.Encode()
	if _, err := pgx.ParseConfig(u.String()); err != nil {
		return fmt.Errorf("postgres URL: %w", err)
	}
	sp.dsn = u.String()
	sp.Location = u.Redacted()
	return nil
}

func (sp *Spec) parseMySQL(rest string) error {
	sp.Backend = BackendMySQL
	base, query, _ := strings.Cut(rest, "?")
	q, err := url.ParseQuery(query)
	if err != nil {
		return fmt.Errorf("mysql parameters: %w", err)
	}
	sp.Table = takeTable(q)
	dsn := base
	if !strings.Contains(base, "(") {
		// A plain URL, user:pass@host:port/db: into the driver's DSN.
		u, err := url.Parse("mysql://" + base)
		if err != nil {
			return fmt.Errorf("mysql URL: %w", err)
		}
		c := mysql.NewConfig()
		c.Net, c.Addr, c.DBName = "tcp", u.Host, strings.TrimPrefix(u.Path, "/")
		if c.Addr != "" && u.Port() == "" {
			c.Addr = net.JoinHostPort(u.Hostname(), "3306")
		}
		if u.User != nil {
			c.User = u.User.Username()
			c.Passwd, _ = u.User.Password()
		}
		dsn = c.FormatDSN()
	}
	if len(q) > 0 {
		dsn += "?" + q.Encode()
	}
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("mysql DSN: %w", err)
	}
	if cfg.DBName == "" {
		return errors.New("mysql: no database: want mysql://user:pass@tcp(host:port)/db")
	}
	sp.dsn = cfg.FormatDSN()
	red := *cfg
	if red.Passwd != "" {
		red.Passwd = "xxxxx"
	}
	sp.Location = "mysql://" + red.FormatDSN()
	return nil
}
