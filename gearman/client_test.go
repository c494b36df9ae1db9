package gearman

import (
	"bufio"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// servePipe runs a scripted server on the far end of a pipe: for each
// request frame it calls answer, which returns the bytes to send back.
func servePipe(t *testing.T, answer func(p *Packet, line []byte) []byte) *Client {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	go func() {
		dec := NewDecoder(bufio.NewReader(srv), 0)
		for {
			p, line, err := dec.Next()
			if err != nil {
				return
			}
			if _, err := srv.Write(answer(p, line)); err != nil {
				return
			}
		}
	}()
	c := NewClient(cli)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func TestClientSubmitStatusAdmin(t *testing.T) {
	c := servePipe(t, func(p *Packet, line []byte) []byte {
		switch {
		case line != nil && string(line) == "status":
			return []byte("f\t1\t0\t0\n.\n")
		case line != nil:
			return []byte("ERR UNKNOWN_COMMAND Unknown+server+command" + string(line) + "\r\n")
		case p.Type == SubmitJobBg && string(p.Args[0]) == "full":
			return AppendPacketString(nil, MagicRes, Error, CodeQueueError, "Job queue is full")
		case p.Type == SubmitJobBg:
			return AppendPacketString(nil, MagicRes, JobCreated, "H:x:1")
		case p.Type == GetStatus:
			return AppendPacketString(nil, MagicRes, StatusRes, string(p.Args[0]), "1", "1", "3", "10")
		}
		return AppendPacketString(nil, MagicRes, NoJob)
	})
	h, err := c.Submit(SubmitJobBg, "f", "u", []byte("data"))
	if err != nil || h != "H:x:1" {
		t.Fatalf("Submit: %q, %v", h, err)
	}
	var se *ServerError
	if _, err := c.Submit(SubmitJobBg, "full", "", []byte("x")); !errors.As(err, &se) || se.Code != CodeQueueError {
		t.Fatalf("Submit to a full queue: %v, want a ServerError with QUEUE_ERROR", err)
	}
	if _, err := c.Submit(SubmitJobEpoch, "f", "u", []byte("x")); err == nil {
		t.Error("Submit with the wrong number of arguments succeeded")
	}
	if st, err := c.Status(h); err != nil || st != (JobStatus{Known: true, Running: true, Numerator: "3", Denominator: "10"}) {
		t.Fatalf("Status: %+v, %v", st, err)
	}
	if got, err := c.Admin("status"); err != nil || got != "f\t1\t0\t0\n.\n" {
		t.Fatalf("Admin status: %q, %v", got, err)
	}
	if got, err := c.Admin("bogus"); err != nil || got != "ERR UNKNOWN_COMMAND Unknown+server+commandbogus\r\n" {
		t.Fatalf("Admin bogus: %q, %v", got, err)
	}
	if _, err := c.Admin("two\nlines"); err == nil {
		t.Error("an admin command with a line break was sent")
	}
}

// TestClientPipelining: queued requests leave in one write and their
// replies come back in order.
func TestClientPipelining(t *testing.T) {
	c := servePipe(t, func(p *Packet, _ []byte) []byte {
		return AppendPacketString(nil, MagicRes, JobCreated, "H:"+string(p.Args[1]))
	})
	var want []string
	for _, u := range []string{"a", "b", "c"} {
		c.Queue(SubmitJobBg, []byte("f"), []byte(u), nil)
		want = append(want, "H:"+u)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for range want {
		p, err := c.Recv()
		if err != nil || p.Type != JobCreated {
			t.Fatalf("reply: %v %v", p, err)
		}
		got = append(got, string(p.Args[0]))
	}
	if !slices.Equal(got, want) {
		t.Errorf("replies %q, want %q", got, want)
	}
}

// TestClientReadLineAfterPacket: a text line that follows a packet in the
// stream is read whole.
func TestClientReadLineAfterPacket(t *testing.T) {
	c := servePipe(t, func(p *Packet, _ []byte) []byte {
		return append(AppendPacketString(nil, MagicRes, EchoRes, "e"), "OK\r\n"...)
	})
	if err := c.Send(EchoReq, []byte("e")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Recv(); err != nil || p.Type != EchoRes {
		t.Fatalf("Recv: %v %v", p, err)
	}
	if line, err := c.ReadLine(); err != nil || line != "OK\r\n" {
		t.Fatalf("ReadLine: %q, %v", line, err)
	}
}

// TestClientAdminList: rows arrive one by one without their terminators;
// ERR, a row callback's error and a list cut short are errors.
func TestClientAdminList(t *testing.T) {
	c := servePipe(t, func(p *Packet, line []byte) []byte {
		switch string(line) {
		case "show schedules":
			return []byte("a\t1\r\nb\t2\n.\n")
		}
		return []byte("ERR UNKNOWN_COMMAND Unknown+server+command" + string(line) + "\r\n")
	})
	var rows []string
	if err := c.AdminList("show schedules", func(l string) error { rows = append(rows, l); return nil }); err != nil ||
		strings.Join(rows, "|") != "a\t1|b\t2" {
		t.Fatalf("AdminList: %q, %v", rows, err)
	}
	var ae *AdminError
	if err := c.AdminList("bogus", func(string) error { return nil }); !errors.As(err, &ae) ||
		ae.Reply != "ERR UNKNOWN_COMMAND Unknown+server+commandbogus" {
		t.Fatalf("AdminList bogus: %v, want an AdminError", err)
	}
	stop := errors.New("enough")
	if err := c.AdminList("show schedules", func(string) error { return stop }); err != stop {
		t.Fatalf("AdminList with a row error: %v, want it returned", err)
	}
	if err := c.AdminList("a\nb", func(string) error { return nil }); err == nil {
		t.Error("an admin command with a line break was sent")
	}
}

// TestClientSendThenQueue: a request written by Send is not written again
// by the next Flush. Send used to leave its packet in the output buffer,
// so a Queue and Flush after it sent it a second time and every reply
// after that answered the request before (the sidecar read ECHO_RES in
// reply to SUBMIT_JOB_BG after a ping). Admin lines go through the same
// buffer.
func TestClientSendThenQueue(t *testing.T) {
	var reqs []string // owned by the server goroutine until the replies are read
	c := servePipe(t, func(p *Packet, line []byte) []byte {
		if line != nil {
			reqs = append(reqs, string(line))
			return []byte("OK\r\n")
		}
		reqs = append(reqs, p.Type.String())
		switch p.Type {
		case EchoReq:
			return AppendPacketString(nil, MagicRes, EchoRes, string(p.Args[0]))
		case GetStatusUnique:
			return AppendPacketString(nil, MagicRes, StatusResUnique, string(p.Args[0]), "0", "0", "0", "0", "0")
		}
		return AppendPacketString(nil, MagicRes, JobCreated, "H:x:"+string(p.Args[1]))
	})
	if err := c.Send(EchoReq, []byte("e")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Recv(); err != nil || p.Type != EchoRes {
		t.Fatalf("ECHO_REQ: %v %v", p, err)
	}
	c.Queue(SubmitJobBg, []byte("f"), []byte("a"), nil)
	c.Queue(SubmitJobBg, []byte("f"), []byte("b"), nil)
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"H:x:a", "H:x:b"} {
		if p, err := c.Recv(); err != nil || p.Type != JobCreated || string(p.Args[0]) != want {
			t.Fatalf("reply to the submission of %s: %v %v, want JOB_CREATED", want, p, err)
		}
	}
	if _, err := c.StatusUnique("u"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Admin("cancel job H:x:a"); err != nil || got != "OK\r\n" {
		t.Fatalf("Admin: %q %v", got, err)
	}
	if h, err := c.Submit(SubmitJobBg, "f", "c", nil); err != nil || h != "H:x:c" {
		t.Fatalf("Submit after Admin: %q %v", h, err)
	}
	want := []string{"ECHO_REQ", "SUBMIT_JOB_BG", "SUBMIT_JOB_BG", "GET_STATUS_UNIQUE", "cancel job H:x:a", "SUBMIT_JOB_BG"}
	if !slices.Equal(reqs, want) {
		t.Errorf("the server read %q, want %q", reqs, want)
	}
}

// TestClientNotSent: a request refused before anything is written says
// so (ErrNotSent), and the connection goes on in step.
func TestClientNotSent(t *testing.T) {
	c := servePipe(t, func(p *Packet, _ []byte) []byte {
		return AppendPacketString(nil, MagicRes, EchoRes, string(p.Args[0]))
	})
	for what, err := range map[string]error{
		"a 64-byte unique":  func() error { _, err := c.StatusUnique(strings.Repeat("u", 64)); return err }(),
		"an empty unique":   func() error { _, err := c.StatusUnique(""); return err }(),
		"too few arguments": func() error { _, err := c.Submit(SubmitJobEpoch, "f", "u", []byte("x")); return err }(),
		"a line break":      func() error { _, err := c.Admin("a\nb"); return err }(),
	} {
		if !errors.Is(err, ErrNotSent) {
			t.Errorf("%s: %v, want ErrNotSent", what, err)
		}
	}
	if err := c.Send(EchoReq, []byte("e")); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Recv(); err != nil || p.Type != EchoRes || string(p.Args[0]) != "e" {
		t.Fatalf("ECHO_REQ after the refusals: %v %v", p, err)
	}
}
