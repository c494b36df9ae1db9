package gearman

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Client is one connection to a Gearman server for submitting jobs, raw
// packet exchange and admin commands. It is not safe for concurrent use.
type Client struct {
	nc  net.Conn
	br  *bufio.Reader
	dec *Decoder
	out []byte
}

// Dial connects to a Gearman server at addr ("host:port").
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("gearman: dial %s: %w", addr, err)
	}
	br := bufio.NewReaderSize(nc, readBufferSize)
	return &Client{nc: nc, br: br, dec: NewDecoder(br, 0)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.nc.Close() }

// SetDeadline bounds every following read and write.
func (c *Client) SetDeadline(t time.Time) error { return c.nc.SetDeadline(t) }

// Send writes one request packet with the given arguments.
func (c *Client) Send(t Type, args ...[]byte) error {
	c.out = AppendPacket(c.out[:0], MagicReq, t, args...)
	_, err := c.nc.Write(c.out)
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
		return "", fmt.Errorf("gearman: %s takes %d arguments, got %d", t, t.NArgs(), len(all))
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

// Admin sends one admin text command and returns the reply: a single
// OK/ERR line, or a list up to and including its closing ".\n".
func (c *Client) Admin(command string) (string, error) {
	if strings.ContainsAny(command, "\r\n") {
		return "", errors.New("gearman: admin command contains a line break")
	}
	if _, err := c.nc.Write([]byte(command + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	for {
		line, err := c.readLine()
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

// readLine reads one text line. The decoder leaves the frame it returned
// last in br until its next call, so that frame is skipped first.
func (c *Client) readLine() (string, error) {
	if c.dec.discard > 0 {
		if _, err := c.br.Discard(c.dec.discard); err != nil {
			return "", err
		}
		c.dec.discard = 0
	}
	return c.br.ReadString('\n')
}
