// Package gearman implements the Gearman protocol: the binary packet
// table and codec, the administrative text protocol's line splitting, and
// a client. It depends on the standard library only, so any Go program can
// use it to talk to gearmand or gearsched.
//
// The byte layout follows gearmand 1.1.20, including the fixed argument
// counts that decide whether the last argument of a packet carries a NUL:
// arguments are separated by NUL bytes, and the last one (the data, for
// types that carry data) is not terminated.
//
// The job server is in package gearman/server, the sidecar's upstream
// connections and forwarder in gearman/sidecar.
package gearman

import "strconv"

// Magic distinguishes requests from responses in the packet header.
type Magic uint32

// The two magic values of the binary protocol.
const (
	MagicReq Magic = 0x00524551 // "\0REQ"
	MagicRes Magic = 0x00524553 // "\0RES"
)

// String returns "REQ", "RES" or the value in hex.
func (m Magic) String() string {
	switch m {
	case MagicReq:
		return "REQ"
	case MagicRes:
		return "RES"
	}
	return "0x" + strconv.FormatUint(uint64(m), 16)
}

// Type is a packet type number (1–42).
type Type uint32

// Packet types, numbered as on the wire.
const (
	CanDo                     Type = 1
	CantDo                    Type = 2
	ResetAbilities            Type = 3
	PreSleep                  Type = 4
	unused5                   Type = 5
	Noop                      Type = 6
	SubmitJob                 Type = 7
	JobCreated                Type = 8
	GrabJob                   Type = 9
	NoJob                     Type = 10
	JobAssign                 Type = 11
	WorkStatus                Type = 12
	WorkComplete              Type = 13
	WorkFail                  Type = 14
	GetStatus                 Type = 15
	EchoReq                   Type = 16
	EchoRes                   Type = 17
	SubmitJobBg               Type = 18
	Error                     Type = 19
	StatusRes                 Type = 20
	SubmitJobHigh             Type = 21
	SetClientID               Type = 22
	CanDoTimeout              Type = 23
	AllYours                  Type = 24
	WorkException             Type = 25
	OptionReq                 Type = 26
	OptionRes                 Type = 27
	WorkData                  Type = 28
	WorkWarning               Type = 29
	GrabJobUniq               Type = 30
	JobAssignUniq             Type = 31
	SubmitJobHighBg           Type = 32
	SubmitJobLow              Type = 33
	SubmitJobLowBg            Type = 34
	SubmitJobSched            Type = 35
	SubmitJobEpoch            Type = 36
	SubmitReduceJob           Type = 37
	SubmitReduceJobBackground Type = 38
	GrabJobAll                Type = 39
	JobAssignAll              Type = 40
	GetStatusUnique           Type = 41
	StatusResUnique           Type = 42

	// MaxType is the highest packet type number.
	MaxType = StatusResUnique
)

// layout is the fixed argument layout of a packet type: argc arguments, and
// with data set, opaque data after the last NUL-terminated argument.
type layout struct {
	name string
	argc int
	data bool
}

var layouts = [MaxType + 1]layout{
	CanDo:                     {"CAN_DO", 1, false},
	CantDo:                    {"CANT_DO", 1, false},
	ResetAbilities:            {"RESET_ABILITIES", 0, false},
	PreSleep:                  {"PRE_SLEEP", 0, false},
	unused5:                   {"UNUSED", 0, false},
	Noop:                      {"NOOP", 0, false},
	SubmitJob:                 {"SUBMIT_JOB", 2, true},
	JobCreated:                {"JOB_CREATED", 1, false},
	GrabJob:                   {"GRAB_JOB", 0, false},
	NoJob:                     {"NO_JOB", 0, false},
	JobAssign:                 {"JOB_ASSIGN", 2, true},
	WorkStatus:                {"WORK_STATUS", 3, false},
	WorkComplete:              {"WORK_COMPLETE", 1, true},
	WorkFail:                  {"WORK_FAIL", 1, false},
	GetStatus:                 {"GET_STATUS", 1, false},
	EchoReq:                   {"ECHO_REQ", 0, true},
	EchoRes:                   {"ECHO_RES", 0, true},
	SubmitJobBg:               {"SUBMIT_JOB_BG", 2, true},
	Error:                     {"ERROR", 2, false},
	StatusRes:                 {"STATUS_RES", 5, false},
	SubmitJobHigh:             {"SUBMIT_JOB_HIGH", 2, true},
	SetClientID:               {"SET_CLIENT_ID", 1, false},
	CanDoTimeout:              {"CAN_DO_TIMEOUT", 2, false},
	AllYours:                  {"ALL_YOURS", 0, false},
	WorkException:             {"WORK_EXCEPTION", 1, true},
	OptionReq:                 {"OPTION_REQ", 1, false},
	OptionRes:                 {"OPTION_RES", 1, false},
	WorkData:                  {"WORK_DATA", 1, true},
	WorkWarning:               {"WORK_WARNING", 1, true},
	GrabJobUniq:               {"GRAB_JOB_UNIQ", 0, false},
	JobAssignUniq:             {"JOB_ASSIGN_UNIQ", 3, true},
	SubmitJobHighBg:           {"SUBMIT_JOB_HIGH_BG", 2, true},
	SubmitJobLow:              {"SUBMIT_JOB_LOW", 2, true},
	SubmitJobLowBg:            {"SUBMIT_JOB_LOW_BG", 2, true},
	SubmitJobSched:            {"SUBMIT_JOB_SCHED", 7, true},
	SubmitJobEpoch:            {"SUBMIT_JOB_EPOCH", 3, true},
	SubmitReduceJob:           {"SUBMIT_REDUCE_JOB", 4, true},
	SubmitReduceJobBackground: {"SUBMIT_REDUCE_JOB_BACKGROUND", 4, true},
	GrabJobAll:                {"GRAB_JOB_ALL", 0, false},
	JobAssignAll:              {"JOB_ASSIGN_ALL", 4, true},
	GetStatusUnique:           {"GET_STATUS_UNIQUE", 1, false},
	StatusResUnique:           {"STATUS_RES_UNIQUE", 6, false},
}

// MaxArgs is the largest number of arguments any packet has, data included
// (SUBMIT_JOB_SCHED: seven arguments and data).
const MaxArgs = 8

// Valid reports whether t is a packet type of the protocol (1–42).
func (t Type) Valid() bool { return t >= 1 && t <= MaxType }

// String returns the protocol name of t, such as "SUBMIT_JOB_BG".
func (t Type) String() string {
	if t.Valid() {
		return layouts[t].name
	}
	return "TYPE_" + strconv.FormatUint(uint64(t), 10)
}

// NArgs is the number of values a packet of type t splits into: its
// NUL-separated arguments, plus one for the data of data-carrying types.
func (t Type) NArgs() int {
	if !t.Valid() {
		return 0
	}
	l := layouts[t]
	if l.data {
		return l.argc + 1
	}
	return l.argc
}

// minNULs is how many NUL bytes a well-formed payload of type t contains.
func (t Type) minNULs() int {
	l := layouts[t]
	if l.data {
		return l.argc
	}
	if l.argc == 0 {
		return 0
	}
	return l.argc - 1
}

// Priority is a job's queue priority. Lower values are served first.
type Priority uint8

// The three priorities, in the order gearmand persists them (0 = HIGH).
const (
	High Priority = iota
	Normal
	Low
)

// NumPriorities is the number of priority levels.
const NumPriorities = 3

// String returns "HIGH", "NORMAL" or "LOW".
func (p Priority) String() string {
	switch p {
	case High:
		return "HIGH"
	case Normal:
		return "NORMAL"
	case Low:
		return "LOW"
	}
	return "PRIORITY_" + strconv.Itoa(int(p))
}

// Submission describes what a SUBMIT_* packet type asks for.
type Submission struct {
	Priority   Priority
	Background bool
	Reduce     bool
	Epoch      bool
	Sched      bool
}

// SubmitKind returns what a submit packet type requests, and false for every
// type that is not a submission.
func SubmitKind(t Type) (Submission, bool) {
	switch t {
	case SubmitJob:
		return Submission{Priority: Normal}, true
	case SubmitJobBg:
		return Submission{Priority: Normal, Background: true}, true
	case SubmitJobHigh:
		return Submission{Priority: High}, true
	case SubmitJobHighBg:
		return Submission{Priority: High, Background: true}, true
	case SubmitJobLow:
		return Submission{Priority: Low}, true
	case SubmitJobLowBg:
		return Submission{Priority: Low, Background: true}, true
	case SubmitJobEpoch:
		return Submission{Priority: Normal, Background: true, Epoch: true}, true
	case SubmitJobSched:
		return Submission{Priority: Normal, Background: true, Sched: true}, true
	case SubmitReduceJob:
		return Submission{Priority: Normal, Reduce: true}, true
	case SubmitReduceJobBackground:
		return Submission{Priority: Normal, Background: true, Reduce: true}, true
	}
	return Submission{}, false
}

// Packet is one decoded binary packet. Args holds Type.NArgs() values; for
// data-carrying types the last one is the opaque data. The slices alias the
// decoder's buffer and are valid only until the next call to Decoder.Next.
type Packet struct {
	Magic Magic
	Type  Type
	Args  [][]byte
	argv  [MaxArgs][]byte
}

// Arg returns argument i, or nil when the packet has fewer arguments.
func (p *Packet) Arg(i int) []byte {
	if i < len(p.Args) {
		return p.Args[i]
	}
	return nil
}
