package workload

import (
	"context"
	"io"
)

// Logs copies a container's output (stdout and stderr, in the order
// written) of its current run to w, as ReadLogs with only Container and
// Follow set. The reading itself is in logread.go, the writing (by the
// supervisor, through a pipe per run) in logwrite.go.
func Logs(ctx context.Context, w io.Writer, stateDir, container string, follow bool) error {
	return ReadLogs(ctx, w, stateDir, LogOptions{Container: container, Follow: follow, Tail: -1})
}
