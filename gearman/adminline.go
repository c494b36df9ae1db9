package gearman

import "bytes"

// SplitAdminLine splits an admin text line into words as gearmand does:
// on single spaces, skipping runs of spaces after a word, so a leading space
// yields an empty first word. More than five words is ErrTooManyWords, on
// which gearmand closes the connection. words is reused as the backing array.
func SplitAdminLine(line []byte, words [][]byte) ([][]byte, error) {
	words = words[:0]
	i := 0
	for {
		j := bytes.IndexByte(line[i:], ' ')
		if j < 0 {
			j = len(line)
		} else {
			j += i
		}
		if len(words) == 5 {
			return words, ErrTooManyWords
		}
		words = append(words, line[i:j])
		for j < len(line) && line[j] == ' ' {
			j++
		}
		if j >= len(line) {
			return words, nil
		}
		i = j
	}
}
