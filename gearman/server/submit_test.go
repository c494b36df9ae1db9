package server

import (
	"strings"
	"testing"

	"github.com/gearsched/gearsched/gearman"
)

// TestRefusalInRequestOrder: a pipelined background submission refused at
// once is answered after the submissions before it, which wait for their
// writes, not ahead of them.
func TestRefusalInRequestOrder(t *testing.T) {
	t.Parallel()
	c := dialT(t, newTestServer(t, Config{}))
	u65 := strings.Repeat("u", 65)
	tests := []struct {
		name       string
		typ        gearman.Type
		args       []string
		code, text string
	}{
		{"unique too large", gearman.SubmitJobBg, []string{"ro", u65, "x"}, gearman.CodeArgumentTooLarge, txtUniqueTooLarge},
		{"bad epoch", gearman.SubmitJobEpoch, []string{"ro", "", "soon", "x"}, gearman.CodeInvalidArgument, txtBadEpoch},
		{"reducer too large", gearman.SubmitReduceJobBackground, []string{"ro", "", strings.Repeat("r", 600), "", "x"},
			gearman.CodeArgumentTooLarge, "Reducer name too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := c.in(t)
			// One write, so the refused one is read while the first
			// still waits for its commit.
			var b []byte
			b = gearman.AppendPacketString(b, gearman.MagicReq, gearman.SubmitJobBg, "ro", "", "first")
			b = gearman.AppendPacketString(b, gearman.MagicReq, tt.typ, tt.args...)
			b = gearman.AppendPacketString(b, gearman.MagicReq, gearman.SubmitJobBg, "ro", "", "last")
			c.writeRaw(b)
			c.expectType(gearman.JobCreated)
			c.expectError(tt.code, tt.text)
			c.expectType(gearman.JobCreated)
		})
	}
}
