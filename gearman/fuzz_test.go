package gearman

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gearsched/gearsched/store"
)

// Seeds live in the repository's top-level testdata/fuzz.
const seedDir = "../testdata/fuzz"

func packetSeeds(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join(seedDir, "packets", "*.hex"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no packet seeds in %s: %v", seedDir, err)
	}
	var seeds [][]byte
	for _, name := range files {
		text, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		b, err := hex.DecodeString(strings.TrimSpace(string(text)))
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzDecode checks that a whole packet either fails to decode or decodes
// into arguments that encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, s := range packetSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := Decode(b, &p); err != nil {
			return
		}
		if len(p.Args) != p.Type.NArgs() {
			t.Fatalf("%s decoded into %d args, want %d", p.Type, len(p.Args), p.Type.NArgs())
		}
		if p.Type.NArgs() == 0 {
			return // payload of argument-less types is ignored
		}
		again := AppendPacket(nil, p.Magic, p.Type, p.Args...)
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip of %s:\n in  %x\n out %x", p.Type, b, again)
		}
	})
}

// FuzzDecoder feeds arbitrary streams through the streaming decoder with a
// tiny read buffer, so both the in-place and the large-payload paths run.
// It must never panic, loop, or hand out more bytes than the stream held.
func FuzzDecoder(f *testing.F) {
	for _, s := range packetSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), 16), 4096)
		for frames := 0; ; frames++ {
			if frames > len(stream) {
				t.Fatalf("%d frames from %d bytes", frames, len(stream))
			}
			p, line, err := d.Next()
			var malformed *MalformedError
			if err != nil && !errors.As(err, &malformed) {
				return
			}
			n := len(line)
			if p != nil {
				for _, a := range p.Args {
					n += len(a)
				}
			}
			if n > len(stream) {
				t.Fatalf("frame of %d bytes from a %d-byte stream", n, len(stream))
			}
		}
	})
}

// FuzzAdminLine runs arbitrary admin lines through the splitter and the
// server's command handler: every line gets exactly one well-formed reply.
func FuzzAdminLine(f *testing.F) {
	text, err := os.ReadFile(filepath.Join(seedDir, "admin-lines.txt"))
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
	s, err := NewServer(Config{Store: st, HandlePrefix: "H:fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") || (len(line) > 0 && line[0] == 0) {
			return // not one admin line
		}
		words, err := SplitAdminLine([]byte(line), nil)
		if errors.Is(err, ErrTooManyWords) {
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
