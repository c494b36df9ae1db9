package gearman

// ERROR packet codes and texts, as gearmand 1.1.20 sends them (reference
// section 2.4) plus the ones gearsched adds where gearmand stays silent.
const (
	errInvalidMagic     = "INVALID_MAGIC"
	errInvalidCommand   = "INVALID_COMMAND"
	errArgumentTooLarge = "ARGUMENT_TOO_LARGE"
	errQueueError       = "QUEUE_ERROR"
	errUnknownOption    = "UNKNOWN_OPTION"
	errJobNotFound      = "JOB_NOT_FOUND"
	errInvalidPacket    = "INVALID_PACKET"
	errInvalidArgument  = "INVALID_ARGUMENT"

	txtRequestMagic     = "Request magic expected"
	txtNotExpected      = "Command not expected"
	txtUniqueTooLarge   = "Unique value too large"
	txtHandleTooLarge   = "Error occurred due to GEARMAND_JOB_HANDLE_SIZE being too small from snprintf"
	txtQueueFull        = "Job queue is full"
	txtUnknownOption    = "Server does not recognize given option"
	txtWorkNotFound     = "Job given in work result not found"
	txtDataNotFound     = "Job does not exist on server"
	txtExceptionMissing = "An exception was received for a job that does not exist"
	txtPacketTooLarge   = "Packet larger than the server's --max-packet-size"
	txtShuttingDown     = "Server is shutting down"
)

// MaxUniqueSize is the longest unique ID accepted; it is stored and compared
// whole (gearmand silently cuts a 64-byte unique to 63).
const MaxUniqueSize = 64

// MaxHandleSize is the longest job handle clients can hold (libgearman keeps
// handles in 64-byte buffers with a NUL).
const MaxHandleSize = 63

// maxClientID is where SET_CLIENT_ID values are cut, as gearmand does.
const maxClientID = 127

// maxReducerSize bounds a reduce job's reducer name (gearmand's buffer).
const maxReducerSize = 511
