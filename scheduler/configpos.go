package scheduler

import (
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// entryPos is where one schedule of the schedules file is written: the line
// of its [[schedule]] header (or of its inline table) and of each key it
// sets. Lines come from go-toml's own parser, so quoting, dotted keys,
// comments and multi-line strings are read as the decoder read them.
type entryPos struct {
	line int
	keys map[string]int
}

// entryPositions returns the position of every schedule in text, in the
// order the decoder fills fileFormat.Schedule. text has already decoded
// without error; should the parser still stop early, the entries found so
// far are returned and the rest are reported at line 1.
func entryPositions(text []byte) []entryPos {
	var p unstable.Parser
	p.Reset(text)
	line := func(n *unstable.Node) int { return p.Shape(n.Raw).Start.Line }
	var entries []entryPos
	inSchedule := false
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.ArrayTable, unstable.Table:
			key := keyOf(e.Key())
			inSchedule = e.Kind == unstable.ArrayTable && key == "schedule"
			if inSchedule {
				entries = append(entries, entryPos{line: line(firstKey(e)), keys: map[string]int{}})
			}
		case unstable.KeyValue:
			key, first := keyOf(e.Key()), firstKey(e)
			switch {
			case inSchedule:
				entries[len(entries)-1].keys[key] = line(first)
			case key == "schedule" && e.Value().Kind == unstable.Array:
				// schedule = [{ name = "a", ... }, ...]
				for it := e.Value().Children(); it.Next(); {
					if tbl := it.Node(); tbl.Kind == unstable.InlineTable {
						entries = append(entries, inlineEntry(tbl, line))
					}
				}
			}
		}
	}
	return entries
}

// inlineEntry is the position of a schedule written as an inline table.
func inlineEntry(tbl *unstable.Node, line func(*unstable.Node) int) entryPos {
	pos := entryPos{line: line(tbl), keys: map[string]int{}}
	for it := tbl.Children(); it.Next(); {
		if kv := it.Node(); kv.Kind == unstable.KeyValue {
			pos.keys[keyOf(kv.Key())] = line(firstKey(kv))
		}
	}
	return pos
}

// firstKey is the first part of the key of a key-value or table header:
// where the key is written.
func firstKey(n *unstable.Node) *unstable.Node {
	it := n.Key()
	it.Next()
	return it.Node()
}

// keyOf joins a (possibly dotted) key's parts with dots.
func keyOf(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

// lineOf returns the line of key in entry i, or of the entry itself when
// the key is not written there (a required key left out) or is empty.
func lineOf(entries []entryPos, i int, key string) int {
	if i >= len(entries) {
		return 1
	}
	if n, ok := entries[i].keys[key]; ok && key != "" {
		return n
	}
	return entries[i].line
}
