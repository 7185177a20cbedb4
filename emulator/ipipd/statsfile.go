package ipipd

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The stats file lets other processes (`labctl status`) read a running
// datapath's counters: Serve writes Config.StatsFile every statsInterval
// and once more when it stops, each time whole, through a temporary file
// renamed over it, so a reader never sees half a file.

const (
	statsInterval = time.Second
	maxStatsFile  = 1 << 20 // far more than any Stats; a bigger file is not ours
)

// StatsFileFor names the stats file of the datapath whose log is logPath:
// next to it, "node1-ipip.log" -> "node1-ipip.stats.json".
func StatsFileFor(logPath string) string {
	return strings.TrimSuffix(logPath, ".log") + ".stats.json"
}

// WriteStatsFile replaces the file at path with s, atomically.
func WriteStatsFile(path string, s Stats) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write stats: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write stats %q: %w", path, err)
	}
	return nil
}

// ReadStatsFile reads a stats file WriteStatsFile wrote; Stats.Time says
// when. A missing file gives an error satisfying errors.Is(err,
// fs.ErrNotExist).
func ReadStatsFile(path string) (Stats, error) {
	var s Stats
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return s, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return s, err
	}
	if !st.Mode().IsRegular() || st.Size() > maxStatsFile {
		return s, fmt.Errorf("stats %q: not a stats file (%v, %d bytes)", path, st.Mode().Type(), st.Size())
	}
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return s, fmt.Errorf("stats %q: %w", path, err)
	}
	return s, nil
}

// writeStatsLoop writes the stats file until ctx ends. Failures are
// logged once each time they start, not every second.
func (d *Datapath) writeStatsLoop(ctx context.Context) {
	t := time.NewTicker(statsInterval)
	defer t.Stop()
	failing := false
	for {
		err := WriteStatsFile(d.cfg.StatsFile, d.Stats())
		if err != nil && !failing {
			d.logf("ipip datapath on %s: %v", d.cfg.Device, err)
		}
		failing = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
