package server

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
	"github.com/gearsched/gearsched/store"
)

// FuzzAdminLine runs arbitrary admin lines through the splitter and the
// server's command handler: every line gets exactly one well-formed reply.
func FuzzAdminLine(f *testing.F) {
	text, err := os.ReadFile(filepath.Join("..", "..", "testdata", "fuzz", "admin-lines.txt"))
	if err != nil {
		f.Fatal(err)
	}
	for _, l := range strings.Split(string(text), "\n") {
		f.Add(l)
	}
	st, err := store.Open(filepath.Join(f.TempDir(), "fuzz.db"), store.Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	s, err := New(Config{Store: st, HandlePrefix: "H:fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") || (len(line) > 0 && line[0] == 0) {
			return // not one admin line
		}
		words, err := gearman.SplitAdminLine([]byte(line), nil)
		if errors.Is(err, gearman.ErrTooManyWords) {
			if strings.Count(line, " ") < 5 {
				t.Fatalf("%q rejected as more than 5 words", line)
			}
			return
		}
		if err != nil || len(words) == 0 || len(words) > 5 {
			t.Fatalf("split %q: %d words, err %v", line, len(words), err)
		}
		reply := string(s.answer(nil, words))
		switch {
		case strings.HasPrefix(reply, "OK") || strings.HasPrefix(reply, "ERR"):
			if strings.Count(reply, "\n") != 1 || !strings.HasSuffix(reply, "\n") {
				t.Fatalf("%q: one-line reply expected, got %q", line, reply)
			}
		case !strings.HasSuffix(reply, ".\n"):
			t.Fatalf("%q: list reply without terminator: %q", line, reply)
		}
	})
}
