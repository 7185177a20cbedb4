package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/labctl/labctl/emulator/statedir"
)

// Logs copies a container's output (stdout and stderr, in the order written,
// across restarts) to w. With follow it keeps copying what is appended until
// ctx ends, the container terminates for good or the pod stops.
func Logs(ctx context.Context, w io.Writer, stateDir, container string, follow bool) error {
	dir, err := openPodDir(stateDir)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	defer dir.Close()
	pc, err := readPodConfigIn(dir)
	if err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if container == "" {
		container = pc.Spec.Containers[0].Name
	}
	if _, err := pc.container(container); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	f, err := dir.OpenFile(logName(container), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) && !follow {
		return nil
	}
	if err != nil {
		return fmt.Errorf("logs of pod %q container %q: %w", pc.Spec.Pod, container, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil || !follow {
		return err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		done := logsDone(dir, container)
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

// logsDone reports whether nothing more will be written to a container's
// log: the pod is stopped or lost, or the container terminated and will
// not restart.
func logsDone(dir *statedir.Dir, container string) bool {
	st, err := readStatus(dir)
	if err != nil {
		return true
	}
	if st.Phase == PhaseStopped || st.Phase == PhaseUnknown {
		return true
	}
	for _, c := range st.Containers {
		if c.Name == container {
			return c.State == StateTerminated
		}
	}
	return true
}
