package gearman

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderSize is the size of a binary packet header: magic, type, size.
const HeaderSize = 12

// DefaultMaxPacketSize is the payload limit a Decoder applies unless told
// otherwise (the daemon's --max-packet-size).
const DefaultMaxPacketSize = 64 << 20

// largeBufKeep is the largest payload buffer a Decoder keeps between packets;
// a bigger one is dropped after use so that one huge job does not pin memory
// on an idle connection.
const largeBufKeep = 1 << 20

// Errors after which the connection's framing cannot be trusted: the caller
// closes the connection.
var (
	ErrBadMagic     = errors.New("gearman: bad packet magic")
	ErrBadType      = errors.New("gearman: unknown packet type")
	ErrTooLarge     = errors.New("gearman: packet larger than the size limit")
	ErrLineTooLong  = errors.New("gearman: admin line too long")
	ErrTooManyWords = errors.New("gearman: admin line has more than 5 words")
)

// MalformedError reports a packet whose payload does not hold the arguments
// its type requires. The packet was consumed whole, so the stream is still in
// sync and the connection can go on.
//
// Payload is the packet's whole payload, for a server that reads some
// malformed packets leniently when it knows more than the packet table
// (gearsched reads a work result whose payload is exactly the handle of a
// job the sender runs as that handle with empty data). Like Packet.Args it
// aliases the bytes decoded: a Decoder's buffer, valid until the next call
// to Next, or the slice given to Decode.
type MalformedError struct {
	Type    Type
	Want    int // NUL-terminated arguments the type requires
	Got     int // NULs found in the payload
	Payload []byte
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("gearman: malformed %s packet: %d NUL-terminated arguments required, %d present", e.Type, e.Want, e.Got)
}

// Decoder reads packets and admin text lines from one connection. Text and
// binary may be mixed freely: each frame is classified by its first byte.
type Decoder struct {
	r       *bufio.Reader
	max     int
	discard int    // bytes of the previous frame still to skip in r
	big     []byte // payload buffer for packets that do not fit in r
	pkt     Packet
}

// NewDecoder returns a Decoder reading from r that rejects payloads over
// maxPacket bytes (DefaultMaxPacketSize when maxPacket <= 0).
func NewDecoder(r *bufio.Reader, maxPacket int) *Decoder {
	if maxPacket <= 0 {
		maxPacket = DefaultMaxPacketSize
	}
	return &Decoder{r: r, max: maxPacket}
}

// Buffered reports whether a further frame may be decoded without blocking
// on the network; servers use it to decide when to flush replies.
func (d *Decoder) Buffered() bool { return d.r.Buffered() > d.discard }

// Next reads the next frame. Exactly one of the results is set on success:
// a binary packet, or an admin line without its line terminator. Both alias
// internal buffers and stay valid until the next call to Next.
//
// A *MalformedError comes with the packet's header fields set in pkt; the
// connection may continue. Any other error ends the connection.
func (d *Decoder) Next() (pkt *Packet, line []byte, err error) {
	if d.discard > 0 {
		if _, err := d.r.Discard(d.discard); err != nil {
			return nil, nil, err
		}
		d.discard = 0
	}
	if cap(d.big) > largeBufKeep {
		d.big = nil
	}
	first, err := d.r.Peek(1)
	if err != nil {
		return nil, nil, err
	}
	if first[0] != 0 {
		line, err := d.readLine()
		return nil, line, err
	}
	pkt, err = d.readPacket()
	return pkt, nil, err
}

func (d *Decoder) readLine() ([]byte, error) {
	line, err := d.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, ErrLineTooLong
	}
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func (d *Decoder) readPacket() (*Packet, error) {
	hdr, err := d.r.Peek(HeaderSize)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	magic := Magic(binary.BigEndian.Uint32(hdr[0:4]))
	typ := Type(binary.BigEndian.Uint32(hdr[4:8]))
	size := uint64(binary.BigEndian.Uint32(hdr[8:12]))
	if magic != MagicReq && magic != MagicRes {
		return nil, ErrBadMagic
	}
	if !typ.Valid() {
		return nil, ErrBadType
	}
	if size > uint64(d.max) {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", ErrTooLarge, size, d.max)
	}
	n := int(size)
	var payload []byte
	if HeaderSize+n <= d.r.Size() {
		// Fits in the read buffer: decode in place, skip it on the next call.
		frame, err := d.r.Peek(HeaderSize + n)
		if err != nil {
			return nil, unexpected(err)
		}
		payload = frame[HeaderSize:]
		d.discard = HeaderSize + n
	} else {
		if _, err := d.r.Discard(HeaderSize); err != nil {
			return nil, unexpected(err)
		}
		if payload, err = d.readLarge(n); err != nil {
			return nil, unexpected(err)
		}
	}
	p := &d.pkt
	p.Magic, p.Type = magic, typ
	return p, p.split(payload)
}

// readLarge reads an n-byte payload that does not fit in the read buffer.
// Its buffer grows with what arrives, doubling from the read buffer's size,
// so a header that declares a huge payload costs nothing until the payload
// comes, and at most twice what came.
func (d *Decoder) readLarge(n int) ([]byte, error) {
	buf := d.big[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, max(2*cap(buf), d.r.Size())))
			copy(grown, buf)
			buf = grown
		}
		m, err := d.r.Read(buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil && len(buf) < n {
			d.big = buf // kept for the next packet, or dropped by Next
			return nil, err
		}
	}
	d.big = buf
	return buf, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// split divides payload into the packet's arguments strictly within the
// payload, so a short packet can never consume bytes of the next one.
func (p *Packet) split(payload []byte) error {
	nuls := p.Type.minNULs()
	n := p.Type.NArgs()
	p.Args = p.argv[:0]
	if n == 0 {
		return nil
	}
	rest := payload
	for i := 0; i < nuls; i++ {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			p.Args = p.argv[:0]
			return &MalformedError{Type: p.Type, Want: nuls, Got: i, Payload: payload}
		}
		p.Args = append(p.Args, rest[:j])
		rest = rest[j+1:]
	}
	p.Args = append(p.Args, rest)
	return nil
}

// Decode parses one complete binary packet from b, which must hold exactly
// the header and the payload it declares. It is the allocation-free core of
// Decoder for callers that frame packets themselves, and the fuzz target.
func Decode(b []byte, p *Packet) error {
	if len(b) < HeaderSize {
		return io.ErrUnexpectedEOF
	}
	p.Magic = Magic(binary.BigEndian.Uint32(b[0:4]))
	p.Type = Type(binary.BigEndian.Uint32(b[4:8]))
	if p.Magic != MagicReq && p.Magic != MagicRes {
		return ErrBadMagic
	}
	if !p.Type.Valid() {
		return ErrBadType
	}
	if uint64(binary.BigEndian.Uint32(b[8:12])) != uint64(len(b)-HeaderSize) {
		return io.ErrUnexpectedEOF
	}
	return p.split(b[HeaderSize:])
}

// AppendPacket appends a packet to dst: the header, then args joined by NUL.
// Pass exactly Type.NArgs() arguments; the last one is written without a NUL.
func AppendPacket(dst []byte, m Magic, t Type, args ...[]byte) []byte {
	start := len(dst)
	dst = AppendHeader(dst, m, t)
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return FinishPacket(dst, start)
}

// AppendPacketString is AppendPacket for string arguments, without
// converting them to byte slices.
func AppendPacketString(dst []byte, m Magic, t Type, args ...string) []byte {
	start := len(dst)
	dst = AppendHeader(dst, m, t)
	for i, a := range args {
		if i > 0 {
			dst = append(dst, 0)
		}
		dst = append(dst, a...)
	}
	return FinishPacket(dst, start)
}

// AppendHeader appends a packet header with a zero payload size; append
// the payload, then call FinishPacket. Servers build packets this way
// without copying their fields into argument slices.
func AppendHeader(dst []byte, m Magic, t Type) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(m))
	dst = binary.BigEndian.AppendUint32(dst, uint32(t))
	return append(dst, 0, 0, 0, 0)
}

// FinishPacket writes the payload size of the packet whose header
// AppendHeader appended at offset start of dst.
func FinishPacket(dst []byte, start int) []byte {
	binary.BigEndian.PutUint32(dst[start+8:], uint32(len(dst)-start-HeaderSize))
	return dst
}
