package server

import (
	"fmt"

	"github.com/gearsched/gearsched/store"
)

// ERROR texts, as gearmand 1.1.20 sends them with their codes, plus the
// ones gearsched adds where gearmand stays silent.
const (
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

// txtFunctionTooLarge answers a submission whose function name is longer
// than the store can key. No real name comes near it: libgearman refuses
// names over 512 bytes, and gearmand closes the connection on names of
// 8 KiB (D21).
var txtFunctionTooLarge = fmt.Sprintf("Function name too large (at most %d bytes)", store.MaxFunctionSize)

// maxClientID is where SET_CLIENT_ID values are cut, as gearmand does.
const maxClientID = 127

// maxReducerSize bounds a reduce job's reducer name (gearmand's buffer).
const maxReducerSize = 511
