package queuewatch

import "testing"

// TestPostgresMark: the mark of a scan for new rows is the low 32 bits of
// the snapshot's xmin, since a row's xmin is a 32-bit transaction id while
// the snapshot's ids carry the epoch above them.
func TestPostgresMark(t *testing.T) {
	f := postgresFresh("queue")
	for snapshot, want := range map[string]string{
		"727:727:": "727",
		"4294967301:4294967305:4294967302,4294967303": "5",
		"8589934591:8589934592:":                      "4294967295",
	} {
		if got, err := f.markOf(snapshot); err != nil || got != want {
			t.Errorf("mark of %q: %q, %v; want %q", snapshot, got, err, want)
		}
	}
	if _, err := f.markOf("nonsense"); err == nil {
		t.Error("a snapshot that does not parse gave a mark")
	}
}
