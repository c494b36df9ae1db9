package sidecar

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// fakeUpstream is a scripted Gearman server on a loopback port that speaks
// what the sidecar sends an upstream: ECHO_REQ, the background and epoch
// submissions, GET_STATUS, GET_STATUS_UNIQUE and the admin line `cancel
// job`. It records every request and submission it decodes, and a script
// decides what each submission gets. All its goroutines stop at test
// cleanup.
type fakeUpstream struct {
	t    *testing.T
	ln   net.Listener
	done chan struct{} // closed by Close: stalled actions give up
	once sync.Once
	wg   sync.WaitGroup

	mu      sync.Mutex
	script  func(fakeSubmission) fakeAction
	conns   map[net.Conn]bool
	nconn   int              // connections accepted so far
	subs    []fakeSubmission // every submission decoded, in order
	queued  map[string]bool  // handles issued and not cancelled
	cancels []string         // handles named by `cancel job`, in order
	// requests names every frame read, in order: the packet type, or the
	// admin line.
	requests []string
	nhandle  int
}

// fakeSubmission is one submission the fake decoded.
type fakeSubmission struct {
	Conn     int // the connection's number, from 0 in accept order
	N        int // its number on that connection, from 0
	Seq      int // its number among all submissions, from 0
	Type     gearman.Type
	Function string
	Unique   string
	When     string // SUBMIT_JOB_EPOCH's time
	Data     string
	// Handle is the handle the fake answered with; empty when it did not
	// answer JOB_CREATED. Set in the copies Submissions returns.
	Handle string
}

// fakeActionKind is what the fake does with a submission.
type fakeActionKind int

const (
	// fakeReply answers JOB_CREATED with a new handle.
	fakeReply fakeActionKind = iota
	// fakeRefuse answers ERROR Code Text.
	fakeRefuse
	// fakeSwallow queues the job but answers nothing: its reply is lost.
	fakeSwallow
	// fakeClose answers nothing and closes the connection: the replies
	// already written reach the client, then it reads end of file. The
	// rest of a pipelined batch is read and thrown away, as a server that
	// goes away mid-batch would.
	fakeClose
)

// fakeAction is the script's decision for one submission.
type fakeAction struct {
	Kind       fakeActionKind
	Code, Text string // fakeRefuse's error
	// Wait, when set, stalls the connection before the action until it is
	// closed (or the test ends): nothing is read or answered meanwhile.
	Wait <-chan struct{}
}

// newFakeUpstream starts a fake upstream on 127.0.0.1:0 whose script
// answers every submission with JOB_CREATED until SetScript changes it.
func newFakeUpstream(t *testing.T) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeUpstream{t: t, ln: ln, done: make(chan struct{}), conns: map[net.Conn]bool{}, queued: map[string]bool{}}
	f.wg.Go(f.accept)
	t.Cleanup(f.Close)
	return f
}

// Addr is the fake's "host:port".
func (f *fakeUpstream) Addr() string { return f.ln.Addr().String() }

// SetScript replaces the script; nil answers every submission with
// JOB_CREATED. The script runs on the connection's goroutine, in the
// order the submissions arrive on it, after the submission was recorded
// and before anything is answered.
func (f *fakeUpstream) SetScript(fn func(fakeSubmission) fakeAction) {
	f.mu.Lock()
	f.script = fn
	f.mu.Unlock()
}

// Submissions returns a copy of every submission received so far.
func (f *fakeUpstream) Submissions() []fakeSubmission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeSubmission(nil), f.subs...)
}

// Cancels returns the handles named by `cancel job` so far.
func (f *fakeUpstream) Cancels() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.cancels...)
}

// Requests returns the name of every frame read so far, in order: a
// packet's type ("SUBMIT_JOB_BG") or an admin line as sent.
func (f *fakeUpstream) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// Conns returns how many connections the fake accepted.
func (f *fakeUpstream) Conns() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nconn
}

// Take stands for a worker taking job h: GET_STATUS no longer knows it,
// nor does `cancel job`.
func (f *fakeUpstream) Take(h string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.queued, h)
}

// Close stops the fake: it closes the listener and every connection,
// releases stalled actions, and waits for its goroutines. It runs at test
// cleanup; calling it earlier is allowed.
func (f *fakeUpstream) Close() {
	f.once.Do(func() {
		close(f.done)
		f.ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
	})
	f.wg.Wait()
}

func (f *fakeUpstream) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed at cleanup
		}
		f.mu.Lock()
		select {
		case <-f.done:
			f.mu.Unlock()
			c.Close()
			return
		default:
		}
		n := f.nconn
		f.nconn++
		f.conns[c] = true
		f.mu.Unlock()
		f.wg.Go(func() { f.serve(c, n) })
	}
}

// serve answers one connection until it closes or the script closes it.
func (f *fakeUpstream) serve(c net.Conn, conn int) {
	defer func() {
		c.Close()
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
	}()
	dec := gearman.NewDecoder(bufio.NewReader(c), 0)
	var out []byte
	reply := func(t gearman.Type, args ...string) bool {
		out = gearman.AppendPacketString(out[:0], gearman.MagicRes, t, args...)
		_, err := c.Write(out)
		return err == nil
	}
	n := 0
	for {
		p, line, err := dec.Next()
		if err != nil {
			return // the client closed, or the fake is shutting down
		}
		f.mu.Lock()
		if line != nil {
			f.requests = append(f.requests, string(line))
		} else {
			f.requests = append(f.requests, p.Type.String())
		}
		f.mu.Unlock()
		if line != nil {
			if !f.admin(c, string(line)) {
				return
			}
			continue
		}
		switch p.Type {
		case gearman.EchoReq:
			if !reply(gearman.EchoRes, string(p.Args[0])) {
				return
			}
		case gearman.GetStatus:
			h := string(p.Args[0])
			f.mu.Lock()
			known := f.queued[h]
			f.mu.Unlock()
			k := "0"
			if known {
				k = "1"
			}
			if !reply(gearman.StatusRes, h, k, "0", "0", "0") {
				return
			}
		case gearman.GetStatusUnique:
			// Known while a job submitted with that unique is queued.
			u := string(p.Args[0])
			k := "0"
			f.mu.Lock()
			for _, s := range f.subs {
				if s.Unique == u && s.Handle != "" && f.queued[s.Handle] {
					k = "1"
				}
			}
			f.mu.Unlock()
			if !reply(gearman.StatusResUnique, u, k, "0", "0", "0", "0") {
				return
			}
		case gearman.SubmitJobBg, gearman.SubmitJobHighBg, gearman.SubmitJobLowBg, gearman.SubmitJobEpoch:
			s := fakeSubmission{Conn: conn, N: n, Type: p.Type, Function: string(p.Args[0]), Unique: string(p.Args[1])}
			if p.Type == gearman.SubmitJobEpoch {
				s.When, s.Data = string(p.Args[2]), string(p.Args[3])
			} else {
				s.Data = string(p.Args[2])
			}
			n++
			f.mu.Lock()
			s.Seq = len(f.subs)
			f.subs = append(f.subs, s)
			script := f.script
			f.mu.Unlock()
			act := fakeAction{Kind: fakeReply}
			if script != nil {
				act = script(s)
			}
			if act.Wait != nil {
				select {
				case <-act.Wait:
				case <-f.done:
					return
				}
			}
			switch act.Kind {
			case fakeReply:
				f.mu.Lock()
				f.nhandle++
				h := "H:fake:" + strconv.Itoa(f.nhandle)
				f.queued[h] = true
				f.subs[s.Seq].Handle = h
				f.mu.Unlock()
				if !reply(gearman.JobCreated, h) {
					return
				}
			case fakeRefuse:
				if !reply(gearman.Error, act.Code, act.Text) {
					return
				}
			case fakeSwallow:
			case fakeClose:
				// Half-close, so that the client reads the replies
				// already sent and then end of file (closing with unread
				// input would reset the connection instead), and drain
				// until the client hangs up.
				if tc, ok := c.(*net.TCPConn); ok {
					tc.CloseWrite()
				}
				io.Copy(io.Discard, c)
				return
			}
		default:
			if !reply(gearman.Error, "UNEXPECTED_PACKET", p.Type.String()) {
				return
			}
		}
	}
}

// admin answers one admin line; it reports whether the connection goes
// on.
func (f *fakeUpstream) admin(c net.Conn, line string) bool {
	var answer string
	if h, ok := strings.CutPrefix(line, "cancel job "); ok {
		h = strings.TrimSpace(h)
		f.mu.Lock()
		f.cancels = append(f.cancels, h)
		known := f.queued[h]
		delete(f.queued, h)
		f.mu.Unlock()
		answer = "ERR UNKNOWN_JOB\r\n"
		if known {
			answer = "OK\r\n"
		}
	} else {
		answer = "ERR UNKNOWN_COMMAND Unknown+server+command\r\n"
	}
	_, err := c.Write([]byte(answer))
	return err == nil
}

// waitUntil waits up to timeout for cond, checking it every few
// milliseconds: a condition wait, not a stand-in for ordering.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
