package pgstore_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gearsched/gearsched/scheduler"
	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/pgstore"
	"github.com/gearsched/gearsched/store/pgstore/pgtest"
)

// TestPostgres runs every test of the store against one real PostgreSQL
// server, each in a database of its own.
func TestPostgres(t *testing.T) {
	srv := pgtest.Start(t)
	n := 0
	db := func(t *testing.T) string {
		n++
		return srv.NewDatabase(t, fmt.Sprintf("t%d", n))
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, url string)
	}{
		{"MigrationsTwoAtOnce", testMigrationsTwoAtOnce},
		{"NewerSchemaRefused", testNewerSchemaRefused},
		{"PendingLifecycle", testPendingLifecycle},
		{"ClaimsDisjoint", testClaimsDisjoint},
		{"DeadClaimRollsBack", testDeadClaimRollsBack},
		{"CancelWaitsForFiring", testCancelWaitsForFiring},
		{"ReloadOnTwoSidecars", testReloadOnTwoSidecars},
		{"StalePlanRefused", testStalePlanRefused},
		{"IDsShared", testIDsShared},
		{"WakeUps", testWakeUps},
		{"ClockBound", testClockBound},
		{"OpenErrors", testOpenErrors},
		{"StaleKeyTakenOnce", testStaleKeyTakenOnce},
		{"TriggerJoinBesideClaim", testTriggerJoinBesideClaim},
		{"ThreeSchedulers", testThreeSchedulers},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, db(t)) })
	}
}

// open opens a store on url, closed when the test ends.
func open(t *testing.T, url string) *pgstore.Store {
	t.Helper()
	st, err := pgstore.Open(context.Background(), url, pgstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// job returns a plain pending job due at due.
func job(id uint64, unique string, due time.Time) *store.Job {
	return &store.Job{ID: id, Handle: fmt.Sprintf("H:t:%d", id), Function: "f", Unique: unique, Priority: 1,
		Due: due.UnixNano(), Data: []byte("x")}
}

func put(t *testing.T, st *pgstore.Store, j *store.Job, request string) *store.Write {
	t.Helper()
	w := st.PutPending(j, request)
	if err := w.Wait(); err != nil {
		t.Fatal(err)
	}
	return w
}

// forward commits a claim as the forwarder does when upstream took every
// job: they leave the pending rows and enter the ledger.
func forward(claim store.Claim, items []store.DueItem) (store.ForwardResult, error) {
	var fw store.Forward
	for _, it := range items {
		if it.Job != nil {
			fw.Done = append(fw.Done, it.ID)
			fw.Ledger = append(fw.Ledger, store.Fired{ID: it.ID, Upstream: "u", UpstreamHandle: "H:u:1", Due: it.Due, At: 1})
		}
	}
	return claim.Forwarded(fw)
}

func testMigrationsTwoAtOnce(t *testing.T, url string) {
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() {
			st, err := pgstore.Open(context.Background(), url, pgstore.Options{})
			if err == nil {
				st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n, max int
	if err := conn.QueryRow(context.Background(), `SELECT count(*), max(version) FROM gearsched_schema`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != pgstore.SchemaVersion() || max != pgstore.SchemaVersion() {
		t.Fatalf("schema rows %d, version %d; want %d of each", n, max, pgstore.SchemaVersion())
	}
}

func testNewerSchemaRefused(t *testing.T, url string) {
	open(t, url).Close()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `INSERT INTO gearsched_schema (version, name) VALUES (999, 'future')`); err != nil {
		t.Fatal(err)
	}
	_, err = pgstore.Open(context.Background(), url, pgstore.Options{})
	if err == nil || !strings.Contains(err.Error(), "newer than this gearsched") {
		t.Fatalf("Open on a newer schema: %v", err)
	}
}

func testPendingLifecycle(t *testing.T, url string) {
	st := open(t, url)
	past := time.Now().Add(-time.Second)
	// Request keys are bytes: a control request's holds a NUL.
	const req1 = "control:gearsched.schedule\x00req-1"
	if w := put(t, st, job(1, "u1", past), req1); !w.Created() {
		t.Fatal("first job not created")
	}
	// The same (function, unique), or the same request, is held by job 1.
	for _, tc := range []struct {
		j       *store.Job
		request string
	}{{job(2, "u1", past), ""}, {job(3, "other", past), req1}} {
		w := put(t, st, tc.j, tc.request)
		if w.Created() || w.Holder().ID != 1 {
			t.Fatalf("job %d: created %v, holder %d; want held by 1", tc.j.ID, w.Created(), w.Holder().ID)
		}
	}
	if err := st.PutPending(&store.Job{ID: 9, Function: strings.Repeat("f", store.MaxFunctionSize+1)}, "").Wait(); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a job whose function is too long: %v, want ErrInvalid", err)
	}
	put(t, st, job(4, "", time.Now().Add(time.Hour)), "")
	if h, ok, err := st.Lookup(4); err != nil || !ok || h.ID != 4 {
		t.Fatalf("Lookup(4) = %v %v %v", h, ok, err)
	}
	claim, items, err := st.Claim(context.Background(), time.Now().UnixNano(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].ID != 1 || string(items[0].Job.Data) != "x" {
		t.Fatalf("claimed %+v, want job 1", items)
	}
	if _, err := forward(claim, items); err != nil {
		t.Fatal(err)
	}
	claim.Release()
	if f, err := st.FiredJob(1); err != nil || f == nil || f.UpstreamHandle != "H:u:1" {
		t.Fatalf("FiredJob(1) = %+v, %v", f, err)
	}
	// Job 1 left its key, so the unique is free; its request is still
	// known while the ledger remembers it.
	if w := put(t, st, job(5, "u1", past), req1); w.Created() || w.Holder().ID != 1 {
		t.Fatalf("request of a forwarded job: created %v holder %d", w.Created(), w.Holder().ID)
	}
	if w := put(t, st, job(6, "u1", time.Now().Add(time.Hour)), ""); !w.Created() {
		t.Fatal("the unique of a forwarded job is still held")
	}
	if res, err := st.Cancel(6); err != nil || res != store.CancelledJob {
		t.Fatalf("Cancel(6) = %v, %v", res, err)
	}
	if res, err := st.Cancel(6); err != nil || res != store.NotFound {
		t.Fatalf("Cancel(6) again = %v, %v", res, err)
	}
	if due, ok, err := st.NextDue(); err != nil || !ok || due != job(4, "", time.Time{}).Due && due < time.Now().UnixNano() {
		t.Fatalf("NextDue = %d %v %v", due, ok, err)
	}
	if n, err := st.PruneFired(time.Now().UnixNano(), 100); err != nil || n != 1 {
		t.Fatalf("PruneFired = %d, %v", n, err)
	}
}

func testClaimsDisjoint(t *testing.T, url string) {
	a, b := open(t, url), open(t, url)
	const jobs = 2000
	due := time.Now().Add(-time.Minute)
	var ws []*store.Write
	for i := range jobs {
		ws = append(ws, a.PutPending(job(uint64(i+1), fmt.Sprintf("u%d", i), due.Add(time.Duration(i))), ""))
	}
	for _, w := range ws {
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[uint64]int{}
	var wg sync.WaitGroup
	for _, st := range []*pgstore.Store{a, b, a, b} {
		wg.Go(func() {
			for {
				claim, items, err := st.Claim(context.Background(), time.Now().UnixNano(), 50)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, it := range items {
					seen[it.ID]++
				}
				mu.Unlock()
				if _, err := forward(claim, items); err != nil {
					t.Error(err)
				}
				claim.Release()
				if len(items) == 0 {
					if _, ok, _ := st.NextDue(); !ok {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d jobs claimed, want %d", len(seen), jobs)
	}
	for id, n := range seen {
		if n != 1 {
			t.Fatalf("job %d claimed %d times", id, n)
		}
	}
}

func testDeadClaimRollsBack(t *testing.T, url string) {
	a, b := open(t, url), open(t, url)
	put(t, a, job(1, "", time.Now().Add(-time.Second)), "")
	claimA, items, err := a.Claim(context.Background(), time.Now().UnixNano(), 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("claim A: %v %v", items, err)
	}
	// While A holds it, B finds nothing to claim.
	claimB, items, err := b.Claim(context.Background(), time.Now().UnixNano(), 10)
	if err != nil || len(items) != 0 {
		t.Fatalf("claim B while A holds: %v %v", items, err)
	}
	claimB.Release()
	// A dies: its connection goes, and its transaction rolls back.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var killed int
	if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE state = 'idle in transaction' AND datname = current_database()`).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating A's claim: %d, %v", killed, err)
	}
	defer claimA.Release()
	// The server rolls the dead transaction back as it ends the backend.
	waitFor(t, "B to claim the job A held when it died", func() bool {
		claimB, items, err := b.Claim(context.Background(), time.Now().UnixNano(), 10)
		if err != nil {
			t.Fatal(err)
		}
		claimB.Release()
		return len(items) == 1 && items[0].ID == 1
	})
}

// schedule returns a per-second schedule from the schedules file's
// parser, as a sidecar's reload makes it.
func schedules(t *testing.T, names ...string) []*store.Schedule {
	t.Helper()
	text := ""
	for _, n := range names {
		text += fmt.Sprintf("[[schedule]]\nname = %q\ncron = \"* * * * * *\"\nfunction = \"tick\"\n\n", n)
	}
	path := filepath.Join(t.TempDir(), "schedules.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	defs, err := scheduler.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return defs
}

// ids hands out ids from st's shared blocks.
func ids(t *testing.T, st *pgstore.Store) func() (uint64, string, error) {
	first, err := st.ReserveIDs(pgstore.IDBlock).Wait()
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Uint64
	return func() (uint64, string, error) {
		id := first + n.Add(1) - 1
		return id, fmt.Sprintf("H:t:%d", id), nil
	}
}

func testCancelWaitsForFiring(t *testing.T, url string) {
	a, b := open(t, url), open(t, url)
	if _, err := scheduler.Sync(a, schedules(t, "s"), time.Now().Add(-3*time.Second), ids(t, a)); err != nil {
		t.Fatal(err)
	}
	all, _ := a.Schedules()
	// Make it protocol-made, so that cancel removes it.
	id := all[0].ID
	setSource(t, url, id)
	claim, items, err := a.Claim(context.Background(), time.Now().UnixNano(), 10)
	if err != nil || len(items) != 1 || items[0].Schedule == nil {
		t.Fatalf("claim: %v %v", items, err)
	}
	cancelled := make(chan store.CancelResult, 1)
	go func() {
		res, err := b.Cancel(id)
		if err != nil {
			t.Error(err)
		}
		cancelled <- res
	}()
	// The cancel waits on the claim's row lock: prove it is blocked, then
	// commit the firing.
	waitFor(t, "the cancel to wait on the claim's lock", func() bool { return lockWaiters(t, url) > 0 })
	plan := *items[0].Schedule
	plan.Next, plan.FireAt = plan.Next+int64(time.Second), plan.FireAt+int64(time.Second)
	if _, err := claim.Forwarded(store.Forward{Schedules: []*store.Schedule{&plan}}); err != nil {
		t.Fatal(err)
	}
	if res := <-cancelled; res != store.CancelledSchedule {
		t.Fatalf("cancel = %v, want CancelledSchedule", res)
	}
	// Nothing resurrects it.
	if sc, _ := a.GetSchedule(id); sc != nil {
		t.Fatalf("schedule %d still there after cancel: %+v", id, sc)
	}
	claim, items, _ = a.Claim(context.Background(), time.Now().Add(time.Hour).UnixNano(), 10)
	claim.Release()
	if len(items) != 0 {
		t.Fatalf("claimed %v after cancel", items)
	}
}

// setSource makes schedule id one a client made (not the file's).
func setSource(t *testing.T, url string, id uint64) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE schedules SET source = 'protocol', name = NULL,
		def = jsonb_set(def, '{source}', '"protocol"') WHERE id = $1`, int64(id)); err != nil {
		t.Fatal(err)
	}
}

// lockWaiters counts sessions waiting for a lock.
func lockWaiters(t *testing.T, url string) int {
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testReloadOnTwoSidecars(t *testing.T, url string) {
	stores := []*pgstore.Store{open(t, url), open(t, url), open(t, url)}
	now := time.Now()
	for round, names := range [][]string{{"a", "b", "c"}, {"b", "c", "d"}} {
		defs := schedules(t, names...)
		var wg sync.WaitGroup
		for _, st := range stores {
			wg.Go(func() {
				if _, err := scheduler.Sync(st, defs, now, ids(t, st)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		all, err := stores[0].Schedules()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, sc := range all {
			got = append(got, sc.Name)
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			t.Fatalf("round %d: schedules %v, want %v", round, got, names)
		}
	}
}

func testStalePlanRefused(t *testing.T, url string) {
	a, b := open(t, url), open(t, url)
	if _, err := scheduler.Sync(a, schedules(t, "s"), time.Now().Add(-2*time.Second), ids(t, a)); err != nil {
		t.Fatal(err)
	}
	claim, items, err := a.Claim(context.Background(), time.Now().UnixNano(), 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("claim: %v %v", items, err)
	}
	// A plan from an older generation than the row's (a redefinition
	// came between the plan and the commit) is refused.
	plan := *items[0].Schedule
	plan.Next, plan.FireAt = 1, 1
	plan.Gen--
	if _, err := claim.Forwarded(store.Forward{Schedules: []*store.Schedule{&plan}}); err != nil {
		t.Fatal(err)
	}
	sc, _ := b.GetSchedule(plan.ID)
	if sc == nil || sc.Next == 1 {
		t.Fatalf("a stale plan was applied: %+v", sc)
	}
}

func testIDsShared(t *testing.T, url string) {
	a, b := open(t, url), open(t, url)
	seen := map[uint64]bool{}
	for range 5 {
		for _, st := range []*pgstore.Store{a, b} {
			first, err := st.ReserveIDs(pgstore.IDBlock).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if seen[first] || (first-1)%pgstore.IDBlock != 0 {
				t.Fatalf("block %d handed out twice or misaligned", first)
			}
			seen[first] = true
		}
	}
}

func testWakeUps(t *testing.T, url string) {
	// The listener's URL carries a pool setting, which its own
	// connection must not pass to PostgreSQL.
	a, b := open(t, url), open(t, withParam(url, "pool_max_conns=8"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	woken := make(chan int64, 16)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { b.Listen(ctx, func(due int64) { woken <- due }) })
	if due := <-woken; due != 0 {
		t.Fatalf("first wake-up %d, want 0 (listening started)", due)
	}
	soon := time.Now().Add(500 * time.Millisecond)
	put(t, a, job(1, "", time.Now().Add(time.Hour)), "") // not soon: no message
	put(t, a, job(2, "", soon), "")
	select {
	case due := <-woken:
		if due != soon.UnixNano() {
			t.Fatalf("woken for %d, want %d", due, soon.UnixNano())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no wake-up for a job due soon")
	}
}

// testStaleKeyTakenOnce: a unique key whose record is gone is taken over
// by one of two writers that find it stale at the same time; the other
// finds the taker's record holding it. A lock on the key row holds both
// writers at their takeover until both wait there.
func testStaleKeyTakenOnce(t *testing.T, url string) {
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	due := time.Now().Add(time.Hour)
	put(t, a, job(1, "stale", due), "")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `DELETE FROM pending WHERE id = 1`); err != nil { // the key stays
		t.Fatal(err)
	}
	locker, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := locker.Exec(ctx, `SELECT id FROM keys WHERE uniq = 'stale' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	w2, w3 := a.PutPending(job(2, "stale", due), ""), b.PutPending(job(3, "stale", due), "")
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writers wait at the key, want 2", waiting)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := locker.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*store.Write{w2, w3} {
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if w2.Created() == w3.Created() {
		t.Fatalf("created: %v and %v; want exactly one", w2.Created(), w3.Created())
	}
	taker, other := w2, w3
	if w3.Created() {
		taker, other = w3, w2
	}
	if other.Holder().ID != taker.Holder().ID {
		t.Errorf("the other writer was told %d holds the key, want %d", other.Holder().ID, taker.Holder().ID)
	}
}

// testTriggerJoinBesideClaim: a trigger stored while a claim fires the
// trigger with the same key does not wait for that claim (whose commit
// wants the key row the store holds: a deadlock) but takes the key with
// a new trigger, and the claim then commits.
func testTriggerJoinBesideClaim(t *testing.T, url string) {
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	trigger := func(id uint64, watch string) *store.Job {
		j := job(id, "gearsched-trigger:1", time.Now().Add(-time.Second))
		j.Kind, j.Upstream, j.Watch = store.JobTrigger, "127.0.0.1:4730", []string{watch}
		return j
	}
	if n, err := a.PutTriggers([]*store.Job{trigger(1, "H:g:1")}); err != nil || n != 1 {
		t.Fatalf("first trigger: %d created, %v", n, err)
	}
	claim, items, err := a.Claim(ctx, time.Now().UnixNano(), 10)
	if err != nil || len(items) != 1 {
		t.Fatalf("claim: %v items, %v", items, err)
	}
	defer claim.Release()
	type result struct {
		n   int
		err error
	}
	done := make(chan result, 1)
	go func() {
		n, err := b.PutTriggers([]*store.Job{trigger(2, "H:g:2")})
		done <- result{n, err}
	}()
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	var r result
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case r = <-done:
		default:
			var waiting int
			if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			if waiting > 0 {
				t.Fatal("storing a trigger waits for the claim firing the one with its key")
			}
			if time.Now().After(deadline) {
				t.Fatal("storing a trigger did not finish")
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		break
	}
	if r.err != nil || r.n != 1 {
		t.Fatalf("trigger beside the claim: %d created, %v; want a new one", r.n, r.err)
	}
	if _, err := forward(claim, items); err != nil {
		t.Fatalf("the claim's commit: %v", err)
	}
	var held int64
	if err := watch.QueryRow(ctx, `SELECT id FROM keys WHERE uniq = 'gearsched-trigger:1'`).Scan(&held); err != nil || held != 2 {
		t.Fatalf("the key is held by %d (%v), want the new trigger 2", held, err)
	}
}

// withParam adds a query parameter to a postgres:// URL.
func withParam(url, param string) string {
	if strings.Contains(url, "?") {
		return url + "&" + param
	}
	return url + "?" + param
}

// testOpenErrors: a server that cannot be reached is ErrUnreachable (the
// daemon waits for it); one that refuses the connection (a database that
// does not exist) is not.
func testOpenErrors(t *testing.T, url string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	_, err = pgstore.Open(ctx, "postgres://gearsched@"+closed+"/gearsched?connect_timeout=5", pgstore.Options{})
	if !errors.Is(err, pgstore.ErrUnreachable) {
		t.Errorf("Open of a closed port: %v, want ErrUnreachable", err)
	}
	i := strings.LastIndex(url, "/")
	missing := url[:i+1] + "no_such_database"
	if j := strings.Index(url[i:], "?"); j >= 0 {
		missing += url[i+j:]
	}
	_, err = pgstore.Open(ctx, missing, pgstore.Options{})
	if err == nil || errors.Is(err, pgstore.ErrUnreachable) {
		t.Errorf("Open of a missing database: %v, want an error other than ErrUnreachable", err)
	}
}

func testClockBound(t *testing.T, url string) {
	// A sidecar whose clock runs an hour ahead claims nothing that the
	// database's clock says is not due yet.
	st := open(t, url)
	put(t, st, job(1, "", time.Now().Add(10*time.Minute)), "")
	claim, items, err := st.Claim(context.Background(), time.Now().Add(time.Hour).UnixNano(), 10)
	if err != nil {
		t.Fatal(err)
	}
	claim.Release()
	if len(items) != 0 || claim.Until() > time.Now().Add(time.Minute).UnixNano() {
		t.Fatalf("claimed %v up to %d by a clock an hour ahead", items, claim.Until())
	}
	_, err = pgstore.Open(context.Background(), url, pgstore.Options{Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if !errors.Is(err, pgstore.ErrSkew) {
		t.Fatalf("Open with a clock an hour off: %v, want ErrSkew", err)
	}
}

// The interfaces the sidecar's parts take.
var (
	_ scheduler.Store         = (*pgstore.Store)(nil)
	_ scheduler.ScheduleStore = (*pgstore.Store)(nil)
)
