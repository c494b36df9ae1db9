package server

import (
	"log/slog"
	"net"
	"testing"
	"time"
)

// TestOutboxCloseDuringForeignWrite: when the outbox is closed while a
// goroutine other than its writer is writing (Shutdown's flush, as the
// peer hangs up), the writer still ends. It used to see the write in
// progress, take it for work that someone else finishes, and wait for a
// wake-up that never came, so the connection and Shutdown waited forever.
// Each round releases the write right after the close, so the writer
// wakes sometimes before and sometimes after the write ends.
func TestOutboxCloseDuringForeignWrite(t *testing.T) {
	t.Parallel()
	for round := range 200 {
		srv, peer := net.Pipe()
		sc := &stallConn{Conn: srv, started: make(chan int, 1), result: make(chan error, 1), closed: make(chan struct{})}
		go func() { // the peer reads everything
			buf := make([]byte, 4096)
			for {
				if _, err := peer.Read(buf); err != nil {
					return
				}
			}
		}()
		o := newOutbox(sc, slog.New(slog.DiscardHandler))
		writerDone := make(chan struct{})
		go func() {
			defer close(writerDone)
			o.run()
		}()
		o.dispatch() // queued output waits for the reader: no wake-up
		o.add(func(b []byte) []byte { return append(b, "reply"...) })
		sc.stalled.Store(true)
		flushed := make(chan struct{})
		go func() { // Shutdown's flush
			defer close(flushed)
			o.flushBefore(time.Now().Add(testTimeout))
		}()
		<-sc.started // the flush's write is in progress
		o.close()
		sc.result <- nil
		select {
		case <-writerDone:
		case <-time.After(testTimeout):
			t.Fatalf("round %d: the writer did not end after close", round)
		}
		<-flushed
		sc.Close()
		peer.Close()
	}
}
