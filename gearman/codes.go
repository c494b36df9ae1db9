package gearman

// ERROR packet codes: the first argument of an ERROR reply, as gearmand
// 1.1.20 sends them, and the ones gearsched adds where gearmand stays
// silent (INVALID_PACKET, INVALID_ARGUMENT).
const (
	CodeInvalidMagic     = "INVALID_MAGIC"
	CodeInvalidCommand   = "INVALID_COMMAND"
	CodeArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	CodeQueueError       = "QUEUE_ERROR"
	CodeUnknownOption    = "UNKNOWN_OPTION"
	CodeJobNotFound      = "JOB_NOT_FOUND"
	CodeInvalidPacket    = "INVALID_PACKET"
	CodeInvalidArgument  = "INVALID_ARGUMENT"
)

// MaxUniqueSize is the longest unique ID a server accepts. gearsched
// stores and compares it whole; gearmand 1.1.20 silently cuts a 64-byte
// unique to 63.
const MaxUniqueSize = 64

// MaxHandleSize is the longest job handle clients can hold (libgearman
// keeps handles in 64-byte buffers with a NUL).
const MaxHandleSize = 63
