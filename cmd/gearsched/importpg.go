package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/gearsched/gearsched/store"
	"github.com/gearsched/gearsched/store/pgstore"
)

// runImportPG implements `gearsched import-pg`: a stopped bbolt sidecar's
// pending jobs, and its schedules made through the protocol or the
// control function, copied into a PostgreSQL store with their ids and
// handles, the id sequence moved past them. Schedules of the schedules
// file are left out: the sidecars load them from the file. Running it
// again copies nothing twice.
func runImportPG(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("import-pg", "import-pg --db OLD.db --store postgres://…",
		"Copies a stopped bbolt sidecar's pending jobs and protocol-made schedules into\n"+
			"PostgreSQL, for several sidecars to share (see README: Running several sidecars).", stderr)
	db := fs.String("db", "gearsched.db", "the stopped sidecar's bbolt database")
	url := fs.String("store", "", "the PostgreSQL database the sidecars will share (postgres://…)")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() != 0 || !isPostgresURL(*url) {
		fs.Usage()
		return usageError{errors.New("import-pg takes --db and a --store postgres://… URL")}
	}
	src, err := store.Open(*db, store.Options{})
	if err != nil {
		return fmt.Errorf("open %s (stop the sidecar first): %w", *db, err)
	}
	defer src.Close()
	if mode, err := src.Mode(); err != nil || mode == "server" {
		return errors.Join(err, fmt.Errorf("%s is a job server's database: only a sidecar's moves to PostgreSQL", *db))
	}
	dst, err := pgstore.Open(ctx, *url, pgstore.Options{})
	if err != nil {
		return err
	}
	defer dst.Close()
	// The bbolt store's next id is above every id it handed out, the
	// forwarded jobs' included: new ids start past it.
	next, err := src.ReserveIDs(1).Wait()
	if err != nil {
		return err
	}
	if err := dst.AdvanceIDs(next); err != nil {
		return err
	}
	var writes []*store.Write
	put := func(id uint64, w func() *store.Write) error {
		if _, known, err := dst.Lookup(id); err != nil || known {
			return err // copied by an earlier run
		}
		writes = append(writes, w())
		return nil
	}
	var putErr error
	err = src.ForEachDue(func(it store.DueItem) bool {
		if it.Job != nil {
			putErr = put(it.ID, func() *store.Write { return dst.PutPending(it.Job, "") })
		}
		return putErr == nil
	})
	if err = errors.Join(err, putErr); err != nil {
		return err
	}
	scheds, err := src.Schedules()
	if err != nil {
		return err
	}
	for _, sc := range scheds {
		if sc.Source == store.SourceFile {
			continue
		}
		if err := put(sc.ID, func() *store.Write { return dst.PutSchedule(sc, "") }); err != nil {
			return err
		}
	}
	copied := 0
	for _, w := range writes {
		if err := w.Wait(); err != nil {
			return err
		}
		if w.Created() {
			copied++
		}
	}
	fmt.Fprintf(stdout, "copied %d pending jobs and schedules from %s; new ids start above %d\n", copied, *db, next)
	return nil
}
