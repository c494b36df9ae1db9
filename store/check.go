package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Damage is one thing wrong with a database: a page or a record that
// cannot be read, or an index that disagrees with the records.
type Damage struct {
	// Bucket is the bucket the damage is in; "" for the file itself.
	Bucket string
	// Key is the damaged record's key, or the first key a lost page held;
	// nil when unknown.
	Key []byte
	// Page is the damaged page, when a page is at fault.
	Page uint64
	// Why says what is wrong.
	Why string
}

// String is the damage as `gearsched check` prints it: bucket, key, why.
func (d Damage) String() string {
	where := d.Bucket
	if where == "" {
		where = "file"
	}
	if d.Key != nil {
		where += " " + formatKey(d.Bucket, d.Key)
	}
	return where + ": " + d.Why
}

// formatKey shows a key the way its bucket uses it.
func formatKey(bucket string, k []byte) string {
	switch {
	case len(k) == 8 && (bucket == string(bucketJobs) || bucket == string(bucketSched) ||
		bucket == string(bucketSchedules) || bucket == string(bucketFired) || bucket == string(bucketRequestOf) ||
		bucket == string(bucketRuns)):
		return "id " + strconv.FormatUint(binary.BigEndian.Uint64(k), 10)
	case len(k) == 16 && (bucket == string(bucketDue) || bucket == string(bucketFiredAt) || bucket == string(bucketRunsAt)):
		at := time.Unix(0, int64(binary.BigEndian.Uint64(k))).UTC().Format(time.RFC3339Nano)
		return at + " id " + strconv.FormatUint(binary.BigEndian.Uint64(k[8:]), 10)
	case bucket == string(bucketUniq):
		return strconv.Quote(strings.ReplaceAll(string(k), "\x00", " / "))
	case bucket == string(bucketCounts):
		return strconv.Quote(countsFunction(k))
	case bucket == string(bucketRequests) || bucket == string(bucketMeta):
		return strconv.Quote(string(k))
	}
	return fmt.Sprintf("%x", k)
}

// Report is what Verify found.
type Report struct {
	// Records counts the records read whole.
	Records int
	// Damage lists what is wrong, in the order found.
	Damage []Damage
	// Copied counts, by bucket, the records Salvage copied (index
	// entries, which it rebuilds, aside).
	Copied map[string]int
	// Journal counts the journal's records not yet in the database file
	// (a crash left them: Open applies them, Salvage copies them).
	Journal int
}

// Clean reports whether nothing is wrong.
func (r *Report) Clean() bool { return len(r.Damage) == 0 }

// Verify checks the database at path: bbolt's pages, read without bbolt
// so that damage cannot crash the check; every record of every bucket,
// decoded and checked against its seal; the indexes (due times, uniques,
// counts, the ledger's time index, request keys) against the records; and,
// when the pages are sound, bbolt's own consistency check (Tx.Check),
// which also accounts for free pages. It holds a shared lock while it
// reads, so a database a server has open is refused. Its error is for what
// kept it from checking; damage is in the report.
func Verify(path string) (*Report, error) {
	f, raw, rep, err := readLocked(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if raw == nil {
		return rep, nil
	}
	cat := scan(raw, nil)
	rep.Records, rep.Damage = cat.records, append(rep.Damage, cat.damage...)
	if cat.sound && !raw.fileDamage() {
		rep.Damage = append(rep.Damage, boltCheck(path, f)...)
	}
	if rep.Journal, err = journalRecords(path); err != nil {
		rep.Damage = append(rep.Damage, Damage{Why: err.Error()})
	}
	return rep, nil
}

// readLocked opens the file at path under a shared lock and reads its
// meta pages (see openRaw) into a new report. raw is nil when nothing can
// be read; the report says why. The caller closes f.
func readLocked(path string) (f *os.File, raw *rawDB, rep *Report, err error) {
	if f, err = lockFile(path, false); err != nil {
		return nil, nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, nil, fmt.Errorf("store: %w", err)
	}
	raw, err = openRaw(f, fi.Size())
	rep = &Report{Damage: raw.notes}
	if err != nil {
		rep.Damage = append(rep.Damage, Damage{Why: err.Error()})
		raw = nil
	}
	return f, raw, rep, nil
}

// boltCheck runs bbolt's Tx.Check on a file whose pages scan found sound,
// so that bbolt follows no page id outside the file. f is the file,
// already locked; bbolt closes it.
func boltCheck(path string, f *os.File) []Damage {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockWait,
		OpenFile: func(string, int, os.FileMode) (*os.File, error) { return f, nil }})
	if err != nil {
		return []Damage{{Why: fmt.Sprintf("bbolt cannot open it: %v", err)}}
	}
	defer db.Close()
	var out []Damage
	db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			out = append(out, Damage{Why: "bbolt check: " + err.Error()})
		}
		return nil
	})
	return out
}

// scan walks a database's records, decodes each one, and checks the
// indexes against the records. With out set it also copies every record it
// can read to out, rebuilding the indexes from the records.
func scan(raw *rawDB, out *salvageWriter) *catalog {
	c := newCatalog(out)
	w := &walker{db: raw, record: c.record}
	w.walk()
	c.sound = len(w.damage) == 0
	if len(w.lost) > 0 {
		w.orphans(c.claim)
	}
	c.damage = append(w.damage, c.damage...)
	c.sound = c.sound && c.checkFreelist(raw)
	c.finish()
	return c
}

// pendingInfo, scheduleInfo: what the index checks need of a record.
type pendingInfo struct {
	due  uint64 // its due-index time
	uniq uint64 // hash of its unique-index key; 0 if not indexed
}

type scheduleInfo struct {
	due  int64 // FireAt if it is in the due index, else -1
	uniq uint64
}

// dueEntry is an entry of the due or fired_at index.
type dueEntry struct {
	at, id uint64
	kind   byte
}

// catalog decodes the records of a walk and keeps what the checks across
// buckets need: ids, due times and key hashes, never payloads, so that a
// database of millions of jobs is checked in memory proportional to its
// record count, not its size.
type catalog struct {
	out     *salvageWriter
	records int
	damage  []Damage
	sound   bool // no page was lost: bbolt's check may follow every page id
	// orphans is set while records come from pages nothing reaches: one
	// whose id was read already is an older copy, passed over.
	orphans bool

	ready     map[uint64]bool
	pending   map[uint64]pendingInfo
	schedules map[uint64]scheduleInfo
	fired     map[uint64]int64 // id -> At
	counted   map[string]int   // function -> pending jobs counted in status
	stored    map[string]int   // function -> what the counts bucket says
	due       []dueEntry
	firedAt   []dueEntry
	uniq      map[uint64]uint64 // key hash -> id, as the index says
	requests  map[string]uint64
	requestOf map[uint64]string
	nextID    uint64 // the meta bucket's high-water mark; 0 if none
	commits   uint64 // the meta bucket's commit count
	maxID     uint64
	mode      string
}

func newCatalog(out *salvageWriter) *catalog {
	return &catalog{out: out, ready: map[uint64]bool{}, pending: map[uint64]pendingInfo{},
		schedules: map[uint64]scheduleInfo{}, fired: map[uint64]int64{}, counted: map[string]int{},
		stored: map[string]int{}, uniq: map[uint64]uint64{}, requests: map[string]uint64{}, requestOf: map[uint64]string{}}
}

func (c *catalog) bad(bucket string, key []byte, format string, args ...any) {
	c.damage = append(c.damage, Damage{Bucket: bucket, Key: bytes.Clone(key), Why: fmt.Sprintf(format, args...)})
}

func keyHash(k []byte) uint64 {
	h := fnv.New64a()
	h.Write(k)
	return h.Sum64() | 1 // never 0, which means "not indexed"
}

// id reads an 8-byte id key, reporting any other.
func (c *catalog) id(bucket string, k []byte) (uint64, bool) {
	if len(k) != 8 {
		c.bad(bucket, k, "key of %d bytes where an 8-byte id belongs", len(k))
		return 0, false
	}
	id := binary.BigEndian.Uint64(k)
	c.maxID = max(c.maxID, id)
	return id, true
}

// record checks one record of the walk; a record that reads well counts,
// and with a salvage it is copied.
func (c *catalog) record(bucket string, k, v []byte) {
	ok := c.decode(bucket, k, v)
	if ok {
		c.records++
	}
}

// decode checks one record by its bucket's format and notes what the
// index checks need.
func (c *catalog) decode(bucket string, k, v []byte) bool {
	if c.orphans && len(k) == 8 && (bucket == string(bucketJobs) || bucket == string(bucketSched) ||
		bucket == string(bucketSchedules) || bucket == string(bucketFired)) {
		id := binary.BigEndian.Uint64(k)
		_, p := c.pending[id]
		_, s := c.schedules[id]
		_, f := c.fired[id]
		if c.ready[id] || p || s || f {
			return false
		}
	}
	switch bucket {
	case string(bucketJobs):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		if _, err := c.job(bucket, k, id, v); err != nil {
			return false
		}
		c.ready[id] = true
		c.out.putJob(k, v)
	case string(bucketSched):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		j, err := c.job(bucket, k, id, v)
		if err != nil {
			return false
		}
		if c.ready[id] {
			c.bad(bucket, k, "job %d is also a ready job; the ready one is kept", id)
			return false
		}
		info := pendingInfo{due: uint64(max(j.Due, 0))}
		if indexed(j.Unique) {
			info.uniq = keyHash(pendingKey(j))
		}
		c.pending[id] = info
		if counted(j) {
			c.counted[j.Function]++
		}
		c.out.putPending(k, v, j)
	case string(bucketSchedules):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		sc, err := decodeSchedule(id, v)
		if err != nil {
			c.bad(bucket, k, "%v", err)
			return false
		}
		if c.ready[id] {
			c.bad(bucket, k, "schedule %d has the id of a ready job; the job is kept", id)
			return false
		}
		info := scheduleInfo{due: -1}
		if sc.Active() {
			info.due = sc.FireAt
		}
		if indexed(sc.Unique) && sc.Source != SourceFile {
			info.uniq = keyHash(uniqKey(sc.Function, sc.Unique))
		}
		c.schedules[id] = info
		c.out.putSchedule(k, v, sc)
	case string(bucketFired):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		f, err := decodeFired(id, v)
		if err != nil {
			c.bad(bucket, k, "%v", err)
			return false
		}
		c.fired[id] = f.At
		c.out.putFired(k, v, f)
	case string(bucketDue), string(bucketFiredAt):
		if len(k) != 16 {
			c.bad(bucket, k, "key of %d bytes where time and id (16 bytes) belong", len(k))
			return false
		}
		e := dueEntry{at: binary.BigEndian.Uint64(k), id: binary.BigEndian.Uint64(k[8:])}
		if bucket == string(bucketFiredAt) {
			c.firedAt = append(c.firedAt, e)
			return true
		}
		if len(v) != 1 || (v[0] != KindJob && v[0] != KindSchedule) {
			c.bad(bucket, k, "entry of kind %x", v)
			return false
		}
		e.kind = v[0]
		c.due = append(c.due, e)
	case string(bucketUniq):
		if len(v) != 8 || bytes.IndexByte(k, 0) < 0 {
			c.bad(bucket, k, "not a function NUL unique key with an 8-byte id")
			return false
		}
		c.uniq[keyHash(k)] = binary.BigEndian.Uint64(v)
	case string(bucketCounts):
		if len(v) != 8 {
			c.bad(bucket, k, "count of %d bytes", len(v))
			return false
		}
		c.stored[countsFunction(k)] = int(binary.BigEndian.Uint64(v))
	case string(bucketRequests):
		if len(v) != 8 {
			c.bad(bucket, k, "id of %d bytes", len(v))
			return false
		}
		c.requests[string(k)] = binary.BigEndian.Uint64(v)
	case string(bucketRequestOf):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		c.requestOf[id] = string(v)
	case string(bucketRuns), string(bucketRunsAt), string(bucketItemRuns):
		// Run records are a diagnostic (see Run): checked for their
		// format only, and left behind by Salvage.
		return c.run(bucket, k, v)
	case string(bucketMeta):
		switch string(k) {
		case string(keyRunCount):
			if len(v) != 8 {
				c.bad(bucket, k, "value of %d bytes", len(v))
				return false
			}
		case string(keyNextID):
			if len(v) != 8 {
				c.bad(bucket, k, "value of %d bytes", len(v))
				return false
			}
			c.nextID = binary.BigEndian.Uint64(v)
		case string(keyCommit):
			if len(v) != 8 {
				c.bad(bucket, k, "value of %d bytes", len(v))
				return false
			}
			c.commits = binary.BigEndian.Uint64(v)
		case string(keyMode):
			if string(v) != "server" && string(v) != "sidecar" {
				c.bad(bucket, k, "unknown mode %q", v)
				return false
			}
			c.mode = string(v)
		default:
			c.bad(bucket, k, "unknown key")
			return false
		}
	case "":
		c.bad(bucket, k, "a record outside every bucket")
		return false
	default:
		c.bad(bucket, k, "a record of an unknown bucket (written by a newer gearsched?)")
		return false
	}
	return true
}

// run checks a record of the run buckets by its format.
func (c *catalog) run(bucket string, k, v []byte) bool {
	switch bucket {
	case string(bucketRuns):
		id, ok := c.id(bucket, k)
		if !ok {
			return false
		}
		if _, err := decodeRun(id, v); err != nil {
			c.bad(bucket, k, "%v", err)
			return false
		}
	case string(bucketRunsAt):
		if len(k) != 16 || len(v) != 8 {
			c.bad(bucket, k, "entry of %d and %d bytes where time and id, and an item id belong", len(k), len(v))
			return false
		}
	default:
		if len(k) != 16 || len(v) != 0 {
			c.bad(bucket, k, "entry of %d and %d bytes where an item id and a run id belong", len(k), len(v))
			return false
		}
	}
	return true
}

// claim picks the bucket that a page nothing reaches any more is read as,
// among the buckets whose lost key ranges hold its keys (see
// walker.orphans): the one whose format its records have, sealed records
// (jobs, schedules) before the ledger's and the ledger's before the
// indexes', whose formats are loose. Ready and pending jobs share a
// format: such a page is put off until the others were read, then read as
// pending if most of its jobs are in the due index, or are due in the
// future, since a pending job read as ready would run before its time,
// while a ready job read as pending still runs at once.
func (c *catalog) claim(candidates []string, elems []element, final bool) string {
	c.orphans = true
	var best []string
	bestN := 0
	for _, rank := range [][]string{
		{string(bucketJobs), string(bucketSched), string(bucketSchedules)},
		{string(bucketFired)},
		{string(bucketDue), string(bucketFiredAt), string(bucketUniq), string(bucketRequestOf), string(bucketCounts), string(bucketRequests)},
	} {
		for _, b := range candidates {
			if !slices.Contains(rank, b) {
				continue
			}
			n := 0
			for _, e := range elems {
				if fits(b, e.key, e.value) {
					n++
				}
			}
			switch {
			case n > bestN:
				best, bestN = []string{b}, n
			case n == bestN && n > 0:
				best = append(best, b)
			}
		}
		if bestN > 0 {
			break
		}
	}
	if len(best) == 1 {
		return best[0]
	}
	if len(best) != 2 || !slices.Contains(best, string(bucketJobs)) || !slices.Contains(best, string(bucketSched)) || !final {
		return ""
	}
	dueJobs := map[uint64]bool{}
	for _, e := range c.due {
		if e.kind == KindJob {
			dueJobs[e.id] = true
		}
	}
	now, pending := time.Now().UnixNano(), 0
	for _, e := range elems {
		id := binary.BigEndian.Uint64(e.key)
		if j, err := decodeJob(id, e.value); err == nil && (dueJobs[id] || j.Due > now) {
			pending++
		}
	}
	if 2*pending > len(elems) {
		return string(bucketSched)
	}
	return string(bucketJobs)
}

// fits reports whether a record has the format of bucket's records.
func fits(bucket string, k, v []byte) bool {
	switch bucket {
	case string(bucketJobs), string(bucketSched):
		_, err := decodeJob(0, v)
		return len(k) == 8 && err == nil
	case string(bucketSchedules):
		_, err := decodeSchedule(binary.BigEndian.Uint64(append(make([]byte, 8-min(len(k), 8)), k...)), v)
		return len(k) == 8 && err == nil
	case string(bucketFired):
		_, err := decodeFired(0, v)
		return len(k) == 8 && err == nil
	case string(bucketDue):
		return len(k) == 16 && len(v) == 1
	case string(bucketFiredAt):
		return len(k) == 16 && len(v) == 0
	case string(bucketUniq):
		return bytes.IndexByte(k, 0) >= 0 && len(v) == 8
	case string(bucketRequestOf):
		return len(k) == 8
	case string(bucketCounts), string(bucketRequests):
		return len(v) == 8
	}
	return false
}

// job decodes a job record and checks what decoding cannot.
func (c *catalog) job(bucket string, k []byte, id uint64, v []byte) (*Job, error) {
	j, err := decodeJob(id, v)
	if err == nil && int(j.Priority) > 2 {
		err = fmt.Errorf("priority %d: %w", j.Priority, errCorrupt)
	}
	if err != nil {
		c.bad(bucket, k, "%v", err)
	}
	return j, err
}

// checkFreelist notes a damaged freelist page (see rawDB.freelistDamage).
func (c *catalog) checkFreelist(raw *rawDB) bool {
	if !raw.metaOK {
		return false
	}
	if d := raw.freelistDamage(); d != nil {
		c.damage = append(c.damage, *d)
		return false
	}
	return true
}

// finish checks the indexes against the records.
func (c *catalog) finish() {
	byDue := make(map[[2]uint64]bool, len(c.due))
	for _, e := range c.due {
		byDue[[2]uint64{e.at, e.id}] = true
		k := dueKey(int64(e.at), e.id)
		switch e.kind {
		case KindJob:
			if p, ok := c.pending[e.id]; !ok || p.due != e.at {
				c.bad(string(bucketDue), k, "no pending job %d due then", e.id)
			}
		case KindSchedule:
			if s, ok := c.schedules[e.id]; !ok || s.due < 0 || uint64(max(s.due, 0)) != e.at {
				c.bad(string(bucketDue), k, "no schedule %d due then", e.id)
			}
		}
	}
	for _, id := range sortedIDs(c.pending) {
		if p := c.pending[id]; !byDue[[2]uint64{p.due, id}] {
			c.bad(string(bucketSched), idKey(id), "pending job missing from the due index: it would never run")
		}
		c.checkUniq(string(bucketSched), id, c.pending[id].uniq)
	}
	for _, id := range sortedIDs(c.schedules) {
		s := c.schedules[id]
		if s.due >= 0 && !byDue[[2]uint64{uint64(max(s.due, 0)), id}] {
			c.bad(string(bucketSchedules), idKey(id), "schedule missing from the due index: it would never fire")
		}
		c.checkUniq(string(bucketSchedules), id, s.uniq)
	}
	for h, id := range c.uniq {
		p, isPending := c.pending[id]
		s, isSchedule := c.schedules[id]
		if !(isPending && p.uniq == h) && !(isSchedule && s.uniq == h) {
			c.bad(string(bucketUniq), nil, "an entry names %d, which holds no such unique", id)
		}
	}
	for _, fn := range sortedKeys(c.counted, c.stored) {
		if c.counted[fn] != c.stored[fn] {
			c.bad(string(bucketCounts), countsKey(fn), "says %d pending jobs, the records %d", c.stored[fn], c.counted[fn])
		}
	}
	firedAt := make(map[uint64]uint64, len(c.firedAt))
	for _, e := range c.firedAt {
		firedAt[e.id] = e.at
		if at, ok := c.fired[e.id]; !ok || uint64(max(at, 0)) != e.at {
			c.bad(string(bucketFiredAt), dueKey(int64(e.at), e.id), "no ledger entry %d recorded then", e.id)
		}
	}
	for _, id := range sortedIDs(c.fired) {
		if at, ok := firedAt[id]; !ok || at != uint64(max(c.fired[id], 0)) {
			c.bad(string(bucketFired), idKey(id), "ledger entry missing from its time index: it would never be pruned")
		}
	}
	for req, id := range c.requests {
		if c.requestOf[id] != req {
			c.bad(string(bucketRequests), []byte(req), "names %d, whose request key is %q", id, c.requestOf[id])
		}
	}
	for _, id := range sortedIDs(c.requestOf) {
		if c.requests[c.requestOf[id]] != id {
			c.bad(string(bucketRequestOf), idKey(id), "request key %q names another record", c.requestOf[id])
		}
	}
	if c.nextID != 0 && c.nextID <= c.maxID {
		c.bad(string(bucketMeta), keyNextID, "job-id high-water mark %d is not above stored id %d: a handle could name two jobs",
			c.nextID, c.maxID)
	}
	c.out.finish(c)
}

// checkUniq checks that a record indexed under key hash h is the one the
// unique index names.
func (c *catalog) checkUniq(bucket string, id, h uint64) {
	if h != 0 && c.uniq[h] != id {
		c.bad(bucket, idKey(id), "missing from the unique index: a submission with its unique would not coalesce")
	}
}

func sortedIDs[V any](m map[uint64]V) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

func sortedKeys(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var keys []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}
