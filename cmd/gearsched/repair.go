package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/gearsched/gearsched/store"
)

// errDamaged makes `gearsched check` exit 1 after it printed the damage.
var errDamaged = errors.New("the database is damaged: `gearsched salvage` copies what is readable into a new database")

// runCheck implements `gearsched check [--db FILE]`: it verifies a database
// the server does not have open and lists what is damaged.
func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := newCommandFlags("check", "check [--db FILE]",
		"Checks a database that no server has open: bbolt's pages, every record of every bucket\n"+
			"(decoded, checksums compared), the indexes against the records, and bbolt's own check.\n"+
			"Prints each problem (bucket, key, why); exit status 0 if there is none, 1 if there are.", stderr)
	db := fs.String("db", "gearsched.db", "database to check")
	if err := fs.Parse(args); err != nil {
		return flagError(err)
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("check takes no arguments, got %q (the database is --db)", fs.Arg(0))}
	}
	rep, err := store.Verify(*db)
	if err != nil {
		return err
	}
	if rep.Journal > 0 {
		fmt.Fprintf(stdout, "%s: its journal holds %d groups of acknowledged writes not yet in the file "+
			"(a crash left them; the server applies them when it opens the database)\n", *db, rep.Journal)
	}
	if rep.Clean() {
		fmt.Fprintf(stdout, "%s: no damage found (%d records)\n", *db, rep.Records)
		return nil
	}
	fmt.Fprintf(stdout, "%s: %s (%d records read whole):\n", *db, problems(len(rep.Damage)), rep.Records)
	for _, d := range rep.Damage {
		fmt.Fprintln(stdout, d)
	}
	return errDamaged
}

// runSalvage implements `gearsched salvage SRC DST`: it copies every
// readable record of a damaged database into a new one.
func runSalvage(args []string, stdout, stderr io.Writer) error {
	src, dst, err := parseSrcDst("salvage", "Copies every record of the database SRC that can be read (whatever the damage: lost pages,\n"+
		"a truncated file, lost meta pages) into the new database DST, which must not exist, and\n"+
		"lists what it could not read. The indexes are rebuilt from the records. Serve DST afterwards\n"+
		"(gearsched serve --db DST); keep SRC for the record.\n", args, stderr)
	if err != nil {
		return err
	}
	rep, err := store.Salvage(src, dst)
	if rep != nil && len(rep.Damage) > 0 {
		fmt.Fprintf(stdout, "%s: %s; records on lost pages, or failing their checks, are not copied:\n", src, problems(len(rep.Damage)))
		for _, d := range rep.Damage {
			fmt.Fprintln(stdout, d)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "copied into %s:", dst)
	for _, b := range slices.Sorted(maps.Keys(rep.Copied)) {
		fmt.Fprintf(stdout, " %s %d,", b, rep.Copied[b])
	}
	fmt.Fprintf(stdout, " indexes rebuilt")
	if rep.Journal > 0 {
		fmt.Fprintf(stdout, ", %d groups of writes applied from the journal", rep.Journal)
	}
	fmt.Fprintf(stdout, "\nserve it with: gearsched serve --db %s\n", dst)
	return nil
}

func problems(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}
