package sidecar

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gearsched/gearsched/gearman"
)

// newTestUpstream returns an Upstream connected to fake, running until
// cleanup, once its connection is up.
func newTestUpstream(t *testing.T, fake *fakeUpstream) *Upstream {
	t.Helper()
	up, err := NewUpstream(UpstreamConfig{Addrs: []string{fake.Addr()}, Timeout: faultTimeout,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		up.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		fake.Close()
		<-done
	})
	waitUntil(t, 5*time.Second, "the upstream connection", func() bool { return up.Stats()[0].Up })
	return up
}

// TestUpstreamRequestsStayInStep: every kind of request the sidecar makes
// of gearmand (ECHO_REQ, a pipelined batch of submissions, GET_STATUS,
// GET_STATUS_UNIQUE, `cancel job`), each followed by a submission on the
// same connection, gets its own reply; the server reads each request once
// and the connection stays up. gearman.Client.Send used to leave its
// packet in the output buffer, so the submission after a ping or a status
// request sent that request again and read its reply ("ECHO_RES in reply
// to SUBMIT_JOB_BG"), which took the connection down.
func TestUpstreamRequestsStayInStep(t *testing.T) {
	fake := newFakeUpstream(t)
	up := newTestUpstream(t, fake)
	p, addr := up.peers[0], fake.Addr()
	ctx := context.Background()
	n := 0
	submit := func(after string) string {
		t.Helper()
		n++
		j := &UpstreamJob{Type: gearman.SubmitJobBg, Function: "f", Unique: "u" + strings.Repeat("x", n), Data: []byte("d")}
		up.Submit(ctx, []*UpstreamJob{j})
		if j.Err != nil {
			t.Fatalf("the submission after %s: %v", after, j.Err)
		}
		return j.Handle
	}
	h := submit("the connection")
	up.ping(ctx, p)
	submit("ECHO_REQ")
	if st, err := up.Status(ctx, addr, h); err != nil || !st.Known {
		t.Fatalf("GET_STATUS: %+v %v", st, err)
	}
	submit("GET_STATUS")
	if st, err := up.StatusUnique(ctx, addr, "ux"); err != nil || !st.Known {
		t.Fatalf("GET_STATUS_UNIQUE: %+v %v", st, err)
	}
	submit("GET_STATUS_UNIQUE")
	if ok, err := up.Cancel(ctx, addr, h); err != nil || !ok {
		t.Fatalf("cancel job: %v %v", ok, err)
	}
	submit("cancel job")

	// Run's own pings (every 5 s) may come in between: ECHO_REQs are
	// counted apart.
	want := []string{"SUBMIT_JOB_BG", "SUBMIT_JOB_BG", "GET_STATUS", "SUBMIT_JOB_BG",
		"GET_STATUS_UNIQUE", "SUBMIT_JOB_BG", "cancel job " + h, "SUBMIT_JOB_BG"}
	got := fake.Requests()
	pings := len(got)
	got = slices.DeleteFunc(got, func(r string) bool { return r == "ECHO_REQ" })
	if pings -= len(got); !slices.Equal(got, want) || pings < 1 {
		t.Errorf("the server read %q and %d ECHO_REQ, want %q and at least one", got, pings, want)
	}
	if st := up.Stats()[0]; !st.Up || st.Failures != 0 || fake.Conns() != 1 {
		t.Errorf("upstream %+v over %d connections, want up on one, no failures", st, fake.Conns())
	}
}

// TestUpstreamRefusedRequestKeepsConnection: a request the client refuses
// before writing anything (GET_STATUS_UNIQUE with a 64-byte unique) fails
// alone: the connection, which is still in step, stays up and serves the
// next request. do used to take it down for any error but ERROR.
func TestUpstreamRefusedRequestKeepsConnection(t *testing.T) {
	fake := newFakeUpstream(t)
	up := newTestUpstream(t, fake)
	p := up.peers[0]
	ctx := context.Background()
	err := up.do(ctx, p, func(cl *gearman.Client) error {
		_, err := cl.StatusUnique(strings.Repeat("u", 64))
		return err
	})
	if !errors.Is(err, gearman.ErrNotSent) {
		t.Fatalf("GET_STATUS_UNIQUE with a 64-byte unique: %v, want ErrNotSent", err)
	}
	if _, err := up.StatusUnique(ctx, fake.Addr(), strings.Repeat("u", 64)); err == nil {
		t.Error("Upstream.StatusUnique sent a 64-byte unique")
	}
	j := &UpstreamJob{Type: gearman.SubmitJobBg, Function: "f", Unique: "u", Data: []byte("d")}
	up.Submit(ctx, []*UpstreamJob{j})
	if j.Err != nil {
		t.Fatalf("the submission after the refused request: %v", j.Err)
	}
	if st := up.Stats()[0]; !st.Up || st.Failures != 0 || fake.Conns() != 1 {
		t.Errorf("upstream %+v over %d connections, want up on one, no failures", st, fake.Conns())
	}
	if got, want := fake.Requests(), []string{"SUBMIT_JOB_BG"}; !slices.Equal(got, want) {
		t.Errorf("the server read %q, want %q", got, want)
	}
}
