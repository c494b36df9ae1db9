package gearman

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// clientBufferSize is the size of a Client's read buffer.
const clientBufferSize = 64 << 10

// Client is one connection to a Gearman server for submitting jobs, asking
// for their status, raw packet exchange and admin commands. It is not safe
// for concurrent use.
//
// Requests and replies stay in step only if every byte written is a
// request whose reply the caller reads: out holds exactly the requests
// queued and not yet written, and every write empties it, so no request is
// ever sent twice.
type Client struct {
	nc  net.Conn
	br  *bufio.Reader
	dec *Decoder
	out []byte
}

// ErrNotSent marks an error for a request the Client refused before
// writing anything (a bad argument): the connection is as it was, still in
// step, and may go on being used.
var ErrNotSent = errors.New("request not sent")

// Dial connects to a Gearman server at addr ("host:port").
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gearman: dial %s: %w", addr, err)
	}
	return NewClient(nc), nil
}

// DialTLS connects to a Gearman server at addr over TLS and completes the
// handshake within ctx. When cfg.ServerName is empty the host part of
// addr is the name the server's certificate must carry.
func DialTLS(ctx context.Context, addr string, cfg *tls.Config) (*Client, error) {
	d := tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gearman: dial %s over TLS: %w", addr, err)
	}
	return NewClient(nc), nil
}

// NewClient returns a Client over an established connection, such as a
// TLS one.
func NewClient(nc net.Conn) *Client {
	br := bufio.NewReaderSize(nc, clientBufferSize)
	return &Client{nc: nc, br: br, dec: NewDecoder(br, 0)}
}

// Close closes the connection.
func (c *Client) Close() error { return c.nc.Close() }

// SetDeadline bounds every following read and write.
func (c *Client) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Send writes one request packet with the given arguments, after any
// packets queued before it.
func (c *Client) Send(t Type, args ...[]byte) error {
	c.Queue(t, args...)
	return c.Flush()
}

// Queue adds one request packet to the output without sending it; Flush
// sends everything queued in one write. Pipelining this way, a batch of
// submissions costs one round trip: the replies come back in order.
func (c *Client) Queue(t Type, args ...[]byte) {
	c.out = AppendPacket(c.out, MagicReq, t, args...)
}

// Flush writes the packets queued since the last Send or Flush, and
// forgets them whatever the outcome: after a failed write the connection
// is out of step anyway, and a request must never be written twice.
func (c *Client) Flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// Recv reads the next packet. It is valid until the next Recv.
func (c *Client) Recv() (*Packet, error) {
	p, line, err := c.dec.Next()
	if err != nil {
		return nil, err
	}
	if line != nil {
		return nil, fmt.Errorf("gearman: text %q where a packet was expected", line)
	}
	return p, nil
}

// ServerError is an ERROR packet received in place of a reply.
type ServerError struct{ Code, Text string }

func (e *ServerError) Error() string { return "gearman: server error " + e.Code + ": " + e.Text }

// Submit sends a submission of type t and returns the job handle from
// JOB_CREATED. args are the packet's arguments after function and unique
// (the epoch time, or reducer and aggregator), then the data.
func (c *Client) Submit(t Type, function, unique string, args ...[]byte) (string, error) {
	all := append([][]byte{[]byte(function), []byte(unique)}, args...)
	if len(all) != t.NArgs() {
		return "", fmt.Errorf("gearman: %s takes %d arguments, got %d: %w", t, t.NArgs(), len(all), ErrNotSent)
	}
	if err := c.Send(t, all...); err != nil {
		return "", err
	}
	p, err := c.Recv()
	if err != nil {
		return "", err
	}
	switch p.Type {
	case JobCreated:
		return string(p.Args[0]), nil
	case Error:
		return "", &ServerError{Code: string(p.Args[0]), Text: string(p.Args[1])}
	}
	return "", fmt.Errorf("gearman: %s in reply to %s", p.Type, t)
}

// JobStatus is a GET_STATUS answer.
type JobStatus struct {
	Known, Running bool
	Numerator      string
	Denominator    string
}

// Status asks for a job's status with GET_STATUS.
func (c *Client) Status(handle string) (JobStatus, error) {
	if err := c.Send(GetStatus, []byte(handle)); err != nil {
		return JobStatus{}, err
	}
	p, err := c.Recv()
	if err != nil {
		return JobStatus{}, err
	}
	if p.Type != StatusRes {
		return JobStatus{}, fmt.Errorf("gearman: %s in reply to GET_STATUS", p.Type)
	}
	return JobStatus{Known: string(p.Args[1]) == "1", Running: string(p.Args[2]) == "1",
		Numerator: string(p.Args[3]), Denominator: string(p.Args[4])}, nil
}

// StatusUnique asks for the status of the job with that unique, whatever
// its function, with GET_STATUS_UNIQUE. gearmand 1.1.20 never answers a
// unique of 64 bytes or more (docs/gearmand-differences.md, D4 and D10), so
// such a unique is refused here rather than sent.
func (c *Client) StatusUnique(unique string) (JobStatus, error) {
	if unique == "" || len(unique) >= 64 {
		return JobStatus{}, fmt.Errorf("gearman: GET_STATUS_UNIQUE needs a unique of 1 to 63 bytes, got %d: %w", len(unique), ErrNotSent)
	}
	if err := c.Send(GetStatusUnique, []byte(unique)); err != nil {
		return JobStatus{}, err
	}
	p, err := c.Recv()
	if err != nil {
		return JobStatus{}, err
	}
	if p.Type != StatusResUnique {
		return JobStatus{}, fmt.Errorf("gearman: %s in reply to GET_STATUS_UNIQUE", p.Type)
	}
	return JobStatus{Known: string(p.Args[1]) == "1", Running: string(p.Args[2]) == "1",
		Numerator: string(p.Args[3]), Denominator: string(p.Args[4])}, nil
}

// Admin sends one admin text command and returns the reply: a single
// OK/ERR line, or a list up to and including its closing ".\n".
func (c *Client) Admin(command string) (string, error) {
	if strings.ContainsAny(command, "\r\n") {
		return "", fmt.Errorf("gearman: admin command contains a line break: %w", ErrNotSent)
	}
	// Through the output buffer, behind anything queued, like a packet.
	c.out = append(append(c.out, command...), '\n')
	if err := c.Flush(); err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		line, err := c.ReadLine()
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if b.Len() == len(line) && (strings.HasPrefix(line, "OK") || strings.HasPrefix(line, "ERR")) {
			return line, nil
		}
		if line == ".\n" {
			return b.String(), nil
		}
	}
}

// AdminError is an admin command's ERR reply.
type AdminError struct{ Reply string }

func (e *AdminError) Error() string { return "gearman: admin reply " + e.Reply }

// AdminList sends an admin command whose reply is a list and calls row
// with each line before the closing ".", as it arrives and without its
// line terminator, so a list of any length is read in constant memory.
// An ERR reply is returned as an *AdminError; an error from row stops
// the reading and is returned (the rest of the list is not read, so the
// connection should then be closed).
func (c *Client) AdminList(command string, row func(line string) error) error {
	if strings.ContainsAny(command, "\r\n") {
		return fmt.Errorf("gearman: admin command contains a line break: %w", ErrNotSent)
	}
	// Through the output buffer, behind anything queued, as Admin does.
	c.out = append(append(c.out, command...), '\n')
	if err := c.Flush(); err != nil {
		return err
	}
	for first := true; ; first = false {
		line, err := c.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("gearman: reading the reply to %q: %w", command, err)
		}
		if first && strings.HasPrefix(line, "ERR") {
			return &AdminError{Reply: strings.TrimRight(line, "\r\n")}
		}
		if line == ".\n" {
			return nil
		}
		if err := row(strings.TrimRight(line, "\r\n")); err != nil {
			return err
		}
	}
}

// ReadLine reads one line of an admin reply, terminator included.
func (c *Client) ReadLine() (string, error) {
	// The decoder leaves the frame it returned last in br until its next
	// call, so that frame is skipped first.
	if c.dec.discard > 0 {
		if _, err := c.br.Discard(c.dec.discard); err != nil {
			return "", err
		}
		c.dec.discard = 0
	}
	return c.br.ReadString('\n')
}
