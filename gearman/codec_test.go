package gearman

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// packetTable is gearmand 1.1.20's packet table, written out
// independently of the codec's own layouts so that a wrong entry there shows.
var packetTable = []struct {
	t    Type
	name string
	argc int
	data bool
}{
	{1, "CAN_DO", 1, false},
	{2, "CANT_DO", 1, false},
	{3, "RESET_ABILITIES", 0, false},
	{4, "PRE_SLEEP", 0, false},
	{5, "UNUSED", 0, false},
	{6, "NOOP", 0, false},
	{7, "SUBMIT_JOB", 2, true},
	{8, "JOB_CREATED", 1, false},
	{9, "GRAB_JOB", 0, false},
	{10, "NO_JOB", 0, false},
	{11, "JOB_ASSIGN", 2, true},
	{12, "WORK_STATUS", 3, false},
	{13, "WORK_COMPLETE", 1, true},
	{14, "WORK_FAIL", 1, false},
	{15, "GET_STATUS", 1, false},
	{16, "ECHO_REQ", 0, true},
	{17, "ECHO_RES", 0, true},
	{18, "SUBMIT_JOB_BG", 2, true},
	{19, "ERROR", 2, false},
	{20, "STATUS_RES", 5, false},
	{21, "SUBMIT_JOB_HIGH", 2, true},
	{22, "SET_CLIENT_ID", 1, false},
	{23, "CAN_DO_TIMEOUT", 2, false},
	{24, "ALL_YOURS", 0, false},
	{25, "WORK_EXCEPTION", 1, true},
	{26, "OPTION_REQ", 1, false},
	{27, "OPTION_RES", 1, false},
	{28, "WORK_DATA", 1, true},
	{29, "WORK_WARNING", 1, true},
	{30, "GRAB_JOB_UNIQ", 0, false},
	{31, "JOB_ASSIGN_UNIQ", 3, true},
	{32, "SUBMIT_JOB_HIGH_BG", 2, true},
	{33, "SUBMIT_JOB_LOW", 2, true},
	{34, "SUBMIT_JOB_LOW_BG", 2, true},
	{35, "SUBMIT_JOB_SCHED", 7, true},
	{36, "SUBMIT_JOB_EPOCH", 3, true},
	{37, "SUBMIT_REDUCE_JOB", 4, true},
	{38, "SUBMIT_REDUCE_JOB_BACKGROUND", 4, true},
	{39, "GRAB_JOB_ALL", 0, false},
	{40, "JOB_ASSIGN_ALL", 4, true},
	{41, "GET_STATUS_UNIQUE", 1, false},
	{42, "STATUS_RES_UNIQUE", 6, false},
}

// rawPacket builds a packet from a header and a payload given verbatim.
func rawPacket(m Magic, t Type, payload string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(m))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// rawHeader builds a header declaring size payload bytes, without payload.
func rawHeader(m Magic, t Type, size uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(m))
	b = binary.BigEndian.AppendUint32(b, uint32(t))
	return binary.BigEndian.AppendUint32(b, size)
}

// sampleArgs returns well-formed arguments for t: plain words, and for
// data-carrying types data that itself holds NULs, including a trailing one.
func sampleArgs(t Type, argc int, data bool) []string {
	var args []string
	for i := range argc {
		args = append(args, fmt.Sprintf("%s-a%d", strings.ToLower(t.String()), i))
	}
	if data {
		args = append(args, "da\x00ta\x00\x00end\x00")
	}
	return args
}

func toBytes(args []string) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = []byte(a)
	}
	return out
}

func argStrings(p *Packet) []string {
	out := make([]string, len(p.Args))
	for i, a := range p.Args {
		out[i] = string(a)
	}
	return out
}

func TestPacketTable(t *testing.T) {
	if len(packetTable) != 42 {
		t.Fatalf("table has %d rows, want 42", len(packetTable))
	}
	for _, tc := range packetTable {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.t.Valid() {
				t.Fatalf("type %d not valid", tc.t)
			}
			if got := tc.t.String(); got != tc.name {
				t.Errorf("String() = %q, want %q", got, tc.name)
			}
			want := tc.argc
			if tc.data {
				want++
			}
			if got := tc.t.NArgs(); got != want {
				t.Errorf("NArgs() = %d, want %d (argc %d, data %v)", got, want, tc.argc, tc.data)
			}
		})
	}
	for _, bad := range []Type{0, 43, 99, 1 << 31} {
		if bad.Valid() {
			t.Errorf("type %d reported valid", bad)
		}
		if bad.NArgs() != 0 {
			t.Errorf("type %d: NArgs %d, want 0", bad, bad.NArgs())
		}
		if got, want := bad.String(), fmt.Sprintf("TYPE_%d", uint32(bad)); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
	if MagicReq.String() != "REQ" || MagicRes.String() != "RES" || Magic(0x1234).String() != "0x1234" {
		t.Errorf("Magic.String: %s %s %s", MagicReq, MagicRes, Magic(0x1234))
	}
}

func TestRoundTripEveryType(t *testing.T) {
	for _, tc := range packetTable {
		for _, m := range []Magic{MagicReq, MagicRes} {
			t.Run(tc.name+"/"+m.String(), func(t *testing.T) {
				args := sampleArgs(tc.t, tc.argc, tc.data)
				b := AppendPacket([]byte("prefix"), m, tc.t, toBytes(args)...)
				if !bytes.HasPrefix(b, []byte("prefix")) {
					t.Fatalf("AppendPacket clobbered dst")
				}
				b = b[len("prefix"):]

				// Header: magic, type and size, big-endian.
				if got := Magic(binary.BigEndian.Uint32(b[0:4])); got != m {
					t.Errorf("magic %s, want %s", got, m)
				}
				if got := Type(binary.BigEndian.Uint32(b[4:8])); got != tc.t {
					t.Errorf("type %d, want %d", got, tc.t)
				}
				payload := b[HeaderSize:]
				if got := binary.BigEndian.Uint32(b[8:12]); int(got) != len(payload) {
					t.Errorf("declared size %d, payload %d", got, len(payload))
				}
				// Payload: arguments joined by NUL, the last without one.
				if want := strings.Join(args, "\x00"); string(payload) != want {
					t.Errorf("payload %q, want %q", payload, want)
				}
				if !tc.data && tc.argc > 0 {
					if payload[len(payload)-1] == 0 {
						t.Errorf("data=no type: last argument ends with a NUL: %q", payload)
					}
					if n := bytes.Count(payload, []byte{0}); n != tc.argc-1 {
						t.Errorf("data=no type: %d NULs, want argc-1 = %d", n, tc.argc-1)
					}
				}

				var p Packet
				if err := Decode(b, &p); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if p.Magic != m || p.Type != tc.t {
					t.Errorf("decoded %s %s, want %s %s", p.Magic, p.Type, m, tc.t)
				}
				if got := argStrings(&p); !slices.Equal(got, args) {
					t.Errorf("decoded args %q, want %q", got, args)
				}
				if len(args) > 0 && p.Arg(len(args)-1) == nil {
					t.Errorf("Arg(last) = nil")
				}
				if p.Arg(len(args)) != nil {
					t.Errorf("Arg(%d) past the end = %q, want nil", len(args), p.Arg(len(args)))
				}
			})
		}
	}
}

// TestDecoderStreamEveryType sends every type back to back through the
// streaming decoder with a small and a large read buffer, so both the
// in-place and the copying paths decode each layout.
func TestDecoderStreamEveryType(t *testing.T) {
	var stream []byte
	var want [][]string
	for _, tc := range packetTable {
		args := sampleArgs(tc.t, tc.argc, tc.data)
		stream = AppendPacket(stream, MagicReq, tc.t, toBytes(args)...)
		want = append(want, args)
	}
	for _, size := range []int{16, 4096} {
		t.Run(fmt.Sprintf("buf%d", size), func(t *testing.T) {
			d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), size), 0)
			for i, tc := range packetTable {
				p, line, err := d.Next()
				if err != nil || line != nil {
					t.Fatalf("%s: err %v line %q", tc.name, err, line)
				}
				if p.Type != tc.t || !slices.Equal(argStrings(p), want[i]) {
					t.Fatalf("got %s %q, want %s %q", p.Type, argStrings(p), tc.t, want[i])
				}
			}
			if _, _, err := d.Next(); err != io.EOF {
				t.Fatalf("after the last packet: %v, want io.EOF", err)
			}
		})
	}
}

func TestDataKeepsNULs(t *testing.T) {
	cases := []struct {
		t    Type
		args []string
	}{
		{EchoReq, []string{"ping\x00with-nul"}},
		{EchoReq, []string{"\x00"}},
		{EchoReq, []string{""}},
		{WorkComplete, []string{"H:x:1", "\x00\x00res\x00"}},
		{SubmitJob, []string{"f", "u", "\x00lead and trail\x00"}},
		{SubmitReduceJob, []string{"f", "u", "red", "", "a\x00b"}},
		{JobAssignAll, []string{"H:x:1", "f", "", "red", "\x00"}},
	}
	for _, tc := range cases {
		b := AppendPacket(nil, MagicRes, tc.t, toBytes(tc.args)...)
		var p Packet
		if err := Decode(b, &p); err != nil {
			t.Fatalf("%s %q: %v", tc.t, tc.args, err)
		}
		if got := argStrings(&p); !slices.Equal(got, tc.args) {
			t.Errorf("%s: got %q, want %q", tc.t, got, tc.args)
		}
	}
	// The bytes gearmand 1.1.20 sends and accepts for these packets.
	b := AppendPacket(nil, MagicReq, EchoReq, []byte("ping"))
	if want := "\x00REQ\x00\x00\x00\x10\x00\x00\x00\x04ping"; string(b) != want {
		t.Errorf("ECHO_REQ ping = %q, want %q", b, want)
	}
	b = AppendPacket(nil, MagicReq, CanDoTimeout, []byte("f"), []byte("1500"))
	if want := "\x00REQ\x00\x00\x00\x17\x00\x00\x00\x06f\x001500"; string(b) != want {
		t.Errorf("CAN_DO_TIMEOUT = %q, want %q", b, want)
	}
}

func TestDecodeMalformed(t *testing.T) {
	cases := []struct {
		t        Type
		payload  string
		want     int
		got      int
		trailing string // more NULs after the declared size
	}{
		{SubmitJob, "fnonly", 2, 0, "\x00\x00\x00"},
		{SubmitJob, "fn\x00uniq", 2, 1, "\x00"},
		{SubmitJobEpoch, "f\x00u\x00", 3, 2, "\x00"},
		{SubmitJobSched, "f\x00u\x00*\x00*\x00*\x00*\x00", 7, 6, "\x00\x00"},
		{SubmitReduceJob, "f\x00u\x00r\x00", 4, 3, "\x00"},
		{JobAssignAll, "h\x00f\x00u\x00", 4, 3, "\x00"},
		{JobAssign, "", 2, 0, "\x00\x00"},
		{WorkComplete, "H:x:1", 1, 0, "\x00"},
		{WorkStatus, "H:x:1\x001", 2, 1, "\x00"},
		{CanDoTimeout, "f", 1, 0, "\x00"},
		{Error, "CODE", 1, 0, "\x00"},
		{StatusRes, "h\x001\x001\x000", 4, 3, "\x00"},
		{StatusResUnique, "u\x001\x001\x000\x000", 5, 4, "\x00"},
	}
	for _, tc := range cases {
		t.Run(tc.t.String(), func(t *testing.T) {
			pkt := rawPacket(MagicReq, tc.t, tc.payload)
			// Decode must stay within the packet although NULs follow
			// it in the same array (gearmand's memchr overran, D9).
			buf := append(append([]byte(nil), pkt...), tc.trailing...)
			var p Packet
			err := Decode(buf[:len(pkt)], &p)
			var me *MalformedError
			if !errors.As(err, &me) {
				t.Fatalf("Decode: %v, want *MalformedError", err)
			}
			if me.Type != tc.t || me.Want != tc.want || me.Got != tc.got {
				t.Errorf("got %+v, want type %s want %d got %d", me, tc.t, tc.want, tc.got)
			}
			if string(me.Payload) != tc.payload {
				t.Errorf("Payload %q, want %q", me.Payload, tc.payload)
			}
			if len(p.Args) != 0 {
				t.Errorf("malformed packet left args %q", argStrings(&p))
			}
			if !strings.Contains(me.Error(), tc.t.String()) {
				t.Errorf("error text %q does not name the type", me.Error())
			}

			// In a stream, the next packet (full of NULs) is intact.
			next := AppendPacket(nil, MagicReq, SubmitJob, []byte("f2"), []byte("u2"), []byte("\x00\x00"))
			stream := append(append([]byte(nil), pkt...), next...)
			for _, size := range []int{16, 4096} {
				d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), size), 0)
				p, _, err := d.Next()
				if !errors.As(err, &me) || me.Got != tc.got {
					t.Fatalf("buf %d: first frame: %v, want MalformedError got=%d", size, err, tc.got)
				}
				if p == nil || p.Type != tc.t {
					t.Errorf("buf %d: malformed frame should carry its header, got %v", size, p)
				}
				if string(me.Payload) != tc.payload {
					t.Errorf("buf %d: Payload %q, want %q", size, me.Payload, tc.payload)
				}
				p, _, err = d.Next()
				if err != nil {
					t.Fatalf("buf %d: next packet: %v", size, err)
				}
				if want := []string{"f2", "u2", "\x00\x00"}; p.Type != SubmitJob || !slices.Equal(argStrings(p), want) {
					t.Errorf("buf %d: next packet %s %q, want SUBMIT_JOB %q", size, p.Type, argStrings(p), want)
				}
			}
		})
	}
}

// loopReader yields its bytes over and over.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

// TestDecodeNoAllocs: well-formed packets, and admin lines, are decoded
// without allocating.
func TestDecodeNoAllocs(t *testing.T) {
	var stream []byte
	stream = AppendPacketString(stream, MagicReq, WorkComplete, "H:x:1", "result")
	stream = AppendPacketString(stream, MagicReq, WorkData, "H:x:1", "")
	stream = AppendPacketString(stream, MagicReq, WorkStatus, "H:x:1", "1", "2")
	stream = AppendPacketString(stream, MagicReq, SubmitJob, "f", "u", "data\x00data")
	stream = append(stream, "status\n"...)
	d := NewDecoder(bufio.NewReaderSize(&loopReader{b: stream}, 4096), 0)
	if n := testing.AllocsPerRun(1000, func() {
		if _, _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decoder.Next: %v allocations per frame, want 0", n)
	}
	one := AppendPacketString(nil, MagicReq, WorkComplete, "H:x:1", "")
	var p Packet
	if n := testing.AllocsPerRun(1000, func() {
		if err := Decode(one, &p); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Decode: %v allocations per packet, want 0", n)
	}
}

func TestDecodeHeaderErrors(t *testing.T) {
	good := AppendPacket(nil, MagicReq, EchoReq, []byte("x"))
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"bad magic REX", append([]byte("\x00REX"), good[4:]...), ErrBadMagic},
		{"zero magic", append([]byte{0, 0, 0, 0}, good[4:]...), ErrBadMagic},
		{"type 0", rawPacket(MagicReq, 0, ""), ErrBadType},
		{"type 43", rawPacket(MagicReq, 43, ""), ErrBadType},
		{"type 99", rawPacket(MagicRes, 99, "x"), ErrBadType},
		{"type max", rawPacket(MagicReq, 0xffffffff, ""), ErrBadType},
		{"short header", good[:11], io.ErrUnexpectedEOF},
		{"size beyond buffer", good[:len(good)-1], io.ErrUnexpectedEOF},
		{"size short of buffer", append(append([]byte(nil), good...), 'y'), io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p Packet
			if err := Decode(tc.b, &p); !errors.Is(err, tc.want) {
				t.Errorf("Decode: %v, want %v", err, tc.want)
			}
			if tc.want == io.ErrUnexpectedEOF {
				return
			}
			// The streaming decoder rejects the header the same way.
			d := NewDecoder(bufio.NewReader(bytes.NewReader(tc.b)), 0)
			if _, _, err := d.Next(); !errors.Is(err, tc.want) {
				t.Errorf("Decoder: %v, want %v", err, tc.want)
			}
		})
	}
	// A bad header is reported even when only the header has arrived.
	d := NewDecoder(bufio.NewReader(bytes.NewReader(rawHeader(MagicReq, 99, 1000))), 0)
	if _, _, err := d.Next(); !errors.Is(err, ErrBadType) {
		t.Errorf("header-only type 99: %v, want ErrBadType", err)
	}
}

func TestDecoderSizeLimit(t *testing.T) {
	const limit = 1024
	cases := []struct {
		name    string
		size    uint32
		payload bool // the payload follows the header
		want    error
	}{
		{"at limit", limit, true, nil},
		{"over limit by one", limit + 1, false, ErrTooLarge},
		{"4 GiB", 0xffffffff, false, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stream := rawHeader(MagicReq, EchoReq, tc.size)
			if tc.payload {
				stream = append(stream, bytes.Repeat([]byte{'x'}, int(tc.size))...)
			}
			d := NewDecoder(bufio.NewReader(bytes.NewReader(stream)), limit)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			p, _, err := d.Next()
			runtime.ReadMemStats(&after)
			if tc.want == nil {
				if err != nil || len(p.Args[0]) != int(tc.size) {
					t.Fatalf("Next: %v", err)
				}
				return
			}
			// Only the header is in the stream: an attempt to read the
			// payload would give io.ErrUnexpectedEOF instead.
			if !errors.Is(err, tc.want) {
				t.Fatalf("Next: %v, want %v", err, tc.want)
			}
			if d.big != nil {
				t.Errorf("decoder allocated a %d-byte payload buffer", cap(d.big))
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
				t.Errorf("rejecting the header allocated %d bytes", grew)
			}
		})
	}
	// The default limit applies when none is given.
	d := NewDecoder(bufio.NewReader(bytes.NewReader(rawHeader(MagicReq, EchoReq, DefaultMaxPacketSize+1))), 0)
	if _, _, err := d.Next(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("default limit: %v, want ErrTooLarge", err)
	}
}

func TestDecoderLargePayload(t *testing.T) {
	// Bigger than the read buffer: copied into a separate buffer, which is
	// dropped again after a payload over largeBufKeep.
	big := bytes.Repeat([]byte("ab\x00"), (largeBufKeep+10)/3)
	stream := AppendPacket(nil, MagicReq, WorkComplete, []byte("H:x:1"), big)
	stream = AppendPacket(stream, MagicReq, EchoReq, []byte("after"))
	d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), 4096), 0)
	p, _, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Args[0]) != "H:x:1" || !bytes.Equal(p.Args[1], big) {
		t.Fatalf("large packet: handle %q, %d data bytes (want %d)", p.Args[0], len(p.Args[1]), len(big))
	}
	p, _, err = d.Next()
	if err != nil || p.Type != EchoReq || string(p.Args[0]) != "after" {
		t.Fatalf("packet after the large one: %v %v", p, err)
	}
	if d.big != nil {
		t.Errorf("payload buffer of %d bytes kept after use", cap(d.big))
	}
}

// TestDecoderGrowsWithData: a header declaring a huge payload does not
// allocate it; the buffer grows only with the bytes that arrive.
func TestDecoderGrowsWithData(t *testing.T) {
	const declared = 64 << 20
	for _, sent := range []int{0, 10, 100 << 10, 3 << 20} {
		stream := append(rawHeader(MagicReq, EchoReq, declared), bytes.Repeat([]byte{'x'}, sent)...)
		d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), 64<<10), declared)
		if _, _, err := d.Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%d of %d bytes: %v, want ErrUnexpectedEOF", sent, declared, err)
		}
		if limit := max(2*sent, 64<<10); cap(d.big) > limit {
			t.Errorf("%d payload bytes arrived of %d declared: buffer of %d bytes, want at most %d", sent, declared, cap(d.big), limit)
		}
	}
}

func TestDecoderTruncated(t *testing.T) {
	pkt := AppendPacket(nil, MagicReq, EchoReq, []byte("hello"))
	cases := []struct {
		name   string
		stream []byte
		want   error
	}{
		{"empty", nil, io.EOF},
		{"one byte of header", pkt[:1], io.ErrUnexpectedEOF},
		{"partial header", pkt[:7], io.ErrUnexpectedEOF},
		{"header only", pkt[:HeaderSize], io.ErrUnexpectedEOF},
		{"partial payload", pkt[:len(pkt)-1], io.ErrUnexpectedEOF},
	}
	for _, tc := range cases {
		for _, size := range []int{16, 4096} {
			d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(tc.stream), size), 0)
			if _, _, err := d.Next(); !errors.Is(err, tc.want) {
				t.Errorf("%s (buf %d): %v, want %v", tc.name, size, err, tc.want)
			}
		}
	}
}

func TestDecoderMixedTextAndBinary(t *testing.T) {
	var stream []byte
	stream = append(stream, "version\r\ngetpid\n"...)
	stream = AppendPacket(stream, MagicReq, EchoReq, []byte("ping\x00with-nul"))
	stream = append(stream, "status\n"...)
	stream = append(stream, "\n"...)
	stream = append(stream, "\r\n"...)
	stream = AppendPacket(stream, MagicReq, SubmitJob, []byte("f"), []byte("u"), []byte("d\r\n"))
	stream = append(stream, "show  jobs \r\n"...)
	stream = append(stream, "two\r\r\n"...)
	stream = append(stream, "cr\rinside\n"...)
	stream = AppendPacket(stream, MagicReq, PreSleep)

	type frame struct {
		line string
		isPk bool
		t    Type
		args []string
	}
	want := []frame{
		{line: "version"},
		{line: "getpid"},
		{isPk: true, t: EchoReq, args: []string{"ping\x00with-nul"}},
		{line: "status"},
		{line: ""},
		{line: ""},
		{isPk: true, t: SubmitJob, args: []string{"f", "u", "d\r\n"}},
		{line: "show  jobs "},
		{line: "two\r"},
		{line: "cr\rinside"},
		{isPk: true, t: PreSleep, args: []string{}},
	}
	for _, size := range []int{16, 4096} {
		d := NewDecoder(bufio.NewReaderSize(bytes.NewReader(stream), size), 0)
		for i, w := range want {
			p, line, err := d.Next()
			if err != nil {
				t.Fatalf("buf %d frame %d: %v", size, i, err)
			}
			switch {
			case w.isPk:
				if p == nil || line != nil || p.Type != w.t || !slices.Equal(argStrings(p), w.args) {
					t.Fatalf("buf %d frame %d: got packet %v line %q, want %s %q", size, i, p, line, w.t, w.args)
				}
			default:
				if p != nil || line == nil || string(line) != w.line {
					t.Fatalf("buf %d frame %d: got packet %v line %q, want line %q", size, i, p, line, w.line)
				}
			}
		}
		if _, _, err := d.Next(); err != io.EOF {
			t.Fatalf("buf %d: at the end: %v, want io.EOF", size, err)
		}
	}
}

func TestDecoderLineErrors(t *testing.T) {
	// A line longer than the read buffer.
	d := NewDecoder(bufio.NewReaderSize(strings.NewReader(strings.Repeat("x", 100)+"\n"), 16), 0)
	if _, _, err := d.Next(); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("long line: %v, want ErrLineTooLong", err)
	}
	// A line cut off by EOF is not a line.
	d = NewDecoder(bufio.NewReader(strings.NewReader("status")), 0)
	if _, line, err := d.Next(); err == nil {
		t.Errorf("unterminated line %q accepted", line)
	}
}

func TestSplitAdminLine(t *testing.T) {
	cases := []struct {
		line string
		want []string
		err  error
	}{
		{"", []string{""}, nil},
		{"status", []string{"status"}, nil},
		{"status ", []string{"status"}, nil},
		{"status    ", []string{"status"}, nil},
		{" status", []string{"", "status"}, nil},
		{"   status", []string{"", "status"}, nil},
		{" ", []string{""}, nil},
		{"show  unique   jobs", []string{"show", "unique", "jobs"}, nil},
		{"cancel job H:vm:1", []string{"cancel", "job", "H:vm:1"}, nil},
		{"a\tb c", []string{"a\tb", "c"}, nil},
		{"a b c d e", []string{"a", "b", "c", "d", "e"}, nil},
		{"a b c d e ", []string{"a", "b", "c", "d", "e"}, nil},
		{"a  b  c  d  e   ", []string{"a", "b", "c", "d", "e"}, nil},
		{" a b c d", []string{"", "a", "b", "c", "d"}, nil},
		{" a b c d e", nil, ErrTooManyWords},
		{"a b c d e f", nil, ErrTooManyWords},
		{"a b c d e f g h", nil, ErrTooManyWords},
	}
	for _, tc := range cases {
		words, err := SplitAdminLine([]byte(tc.line), make([][]byte, 0, 1))
		if !errors.Is(err, tc.err) {
			t.Errorf("%q: err %v, want %v", tc.line, err, tc.err)
			continue
		}
		if tc.err != nil {
			continue
		}
		got := make([]string, len(words))
		for i, w := range words {
			got[i] = string(w)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: words %q, want %q", tc.line, got, tc.want)
		}
	}
}

func TestSubmitKind(t *testing.T) {
	cases := []struct {
		t    Type
		want Submission
	}{
		{SubmitJob, Submission{Priority: Normal}},
		{SubmitJobBg, Submission{Priority: Normal, Background: true}},
		{SubmitJobHigh, Submission{Priority: High}},
		{SubmitJobHighBg, Submission{Priority: High, Background: true}},
		{SubmitJobLow, Submission{Priority: Low}},
		{SubmitJobLowBg, Submission{Priority: Low, Background: true}},
		{SubmitJobEpoch, Submission{Priority: Normal, Background: true, Epoch: true}},
		{SubmitJobSched, Submission{Priority: Normal, Background: true, Sched: true}},
		{SubmitReduceJob, Submission{Priority: Normal, Reduce: true}},
		{SubmitReduceJobBackground, Submission{Priority: Normal, Background: true, Reduce: true}},
	}
	subs := map[Type]bool{}
	for _, tc := range cases {
		subs[tc.t] = true
		got, ok := SubmitKind(tc.t)
		if !ok || got != tc.want {
			t.Errorf("SubmitKind(%s) = %+v %v, want %+v", tc.t, got, ok, tc.want)
		}
	}
	for _, row := range packetTable {
		if _, ok := SubmitKind(row.t); ok != subs[row.t] {
			t.Errorf("SubmitKind(%s) ok = %v", row.t, ok)
		}
	}
}
