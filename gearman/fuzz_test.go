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
