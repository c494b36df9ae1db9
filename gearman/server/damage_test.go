package server

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/storetest"
)

// TestShowSchedulesOnDamagedPage: a page of the due index overwritten
// with random bytes, in a database opened without the full check (as a
// large one is), makes `show schedules` end early with what it could
// read, and the server goes on serving; before, bbolt's panic killed it.
func TestShowSchedulesOnDamagedPage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "damaged.db")
	st, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	var ws []*store.Write
	for id := uint64(1); id <= 600; id++ {
		ws = append(ws, st.PutPending(&store.Job{ID: id, Handle: fmt.Sprint(testPrefix, ":", id), Function: "f",
			Unique: fmt.Sprint("u", id), Due: 4e18 + int64(id)*1e9, Data: []byte(strings.Repeat("d", 50))}, ""))
	}
	for _, w := range ws {
		if err := w.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	vals, pageSize, err := storetest.Values(path, "due")
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.OverwritePage(path, vals[len(vals)/2].Page(pageSize), pageSize, rand.New(rand.NewPCG(1, 1))); err != nil {
		t.Fatal(err)
	}

	if _, err := store.Open(path, store.Options{NoSync: true}); err == nil {
		t.Fatal("the full check on open missed the damaged page")
	}
	st, err = store.Open(path, store.Options{NoSync: true, VerifyLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	ts := serveStore(t, Config{}, st)
	c := dialT(t, ts.addr)
	reply := c.admin("show schedules")
	if rows := strings.Count(reply, "\n") - 1; !strings.HasSuffix(reply, ".\n") || rows >= 600 {
		t.Errorf("show schedules listed %d rows of 600, ending %q", rows, reply[max(len(reply)-20, 0):])
	}
	c.send(gearman.EchoReq, "alive")
	c.expect(gearman.EchoRes, "alive")
	h := c.submit(gearman.SubmitJobBg, "g", "", "after the damage")
	c.status(h, "1", "0", "0", "0")
}
