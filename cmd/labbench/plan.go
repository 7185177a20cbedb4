package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/labctl/labctl/emulator/plan"
	"github.com/labctl/labctl/emulator/spec"
	"github.com/labctl/labctl/internal/labgen"
)

// The plan table's targets (issue 8 item 6): validating and planning stay
// linear in nodes, so the biggest lab is quick and small, and bytes per
// node do not grow with the lab.
const (
	planMaxTime    = time.Second
	planMaxBytes   = 100 << 20
	planMaxGrowth  = 1.5 // bytes per node, against the smallest lab of the backend
	planRunsPerRow = 3
)

var planSizes = []int{100, 1000, 4000}

// planRow is one size and backend: validating its file, then planning it.
type planRow struct {
	nodes    int
	backend  spec.Backend
	yamlSize int
	refused  string // validate's message when the file is over a cap

	validate, compile        time.Duration // medians
	validateBytes, planBytes uint64        // allocated
	peak                     uint64        // the heap's peak over both, above where it started
	err                      error
}

// planBench measures every row; it needs no root and creates nothing.
func planBench() []*planRow {
	var rows []*planRow
	for _, backend := range []spec.Backend{spec.BackendHostGW, spec.BackendVXLAN} {
		for _, n := range planSizes {
			r := &planRow{nodes: n, backend: backend}
			r.err = r.measure()
			rows = append(rows, r)
		}
	}
	return rows
}

func (r *planRow) measure() error {
	name := fmt.Sprintf("plan%d", r.nodes)
	data := labgen.YAML(name, r.nodes, 0, r.backend)
	r.yamlSize = len(data)
	var vtimes, ctimes []time.Duration
	for range planRunsPerRow {
		peak := startPeakHeap()
		before := allocated()
		start := time.Now()
		topo, err := spec.Parse(name+".yaml", data)
		vtimes = append(vtimes, time.Since(start))
		r.validateBytes = allocated() - before
		var inv *spec.InvalidError
		switch {
		case errors.As(err, &inv) && r.nodes > spec.MaxNodes:
			// Refused by the node cap, as it must be: plan the lab
			// spec's IPAM would give without the cap, to show the
			// plan stays linear past what a host can build.
			r.refused = inv.Problems[0].Msg
			if topo, err = labgen.Topology(name, r.nodes, r.backend); err != nil {
				peak.stop()
				return err
			}
		case err != nil:
			peak.stop()
			return err
		}
		before = allocated()
		start = time.Now()
		p, err := plan.Compile(topo)
		ctimes = append(ctimes, time.Since(start))
		r.planBytes = allocated() - before
		r.peak = peak.stop()
		if err != nil {
			return err
		}
		runtime.KeepAlive(p)
	}
	r.validate, r.compile = median(vtimes), median(ctimes)
	return nil
}

func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// peakHeap samples the bytes of live and not yet swept heap objects every
// 200 µs (a read of runtime/metrics, which stops nothing) and keeps the
// largest value above the one it started with.
type peakHeap struct {
	done chan struct{}
	wg   sync.WaitGroup
	base uint64
	max  uint64
}

const heapObjects = "/memory/classes/heap/objects:bytes"

func heapNow() uint64 {
	s := []metrics.Sample{{Name: heapObjects}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func startPeakHeap() *peakHeap {
	runtime.GC()
	p := &peakHeap{done: make(chan struct{}), base: heapNow()}
	p.max = p.base
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			select {
			case <-p.done:
				return
			case <-t.C:
				p.max = max(p.max, heapNow())
			}
		}
	}()
	return p
}

func (p *peakHeap) stop() uint64 {
	close(p.done)
	p.wg.Wait()
	p.max = max(p.max, heapNow())
	return p.max - p.base
}

func reportPlan(w io.Writer, rows []*planRow) {
	fmt.Fprintf(w, "\nlabbench: validate and plan, no root, median of %d runs (issue 8 item 6)\n", planRunsPerRow)
	fmt.Fprintf(w, "target: every row under %v and %d MB allocated, plan bytes per node at most %.1fx the 100-node row's (linear growth)\n\n",
		planMaxTime, planMaxBytes>>20, planMaxGrowth)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "nodes\tbackend\tyaml\tvalidate\tvalidate alloc\tplan\tplan alloc\tplan B/node\theap peak\ttarget\tnote")
	base := map[spec.Backend]float64{}
	for _, r := range rows {
		if r.err != nil {
			fmt.Fprintf(tw, "%d\t%s\t-\t-\t-\t-\t-\t-\t-\tERROR\t%v\n", r.nodes, r.backend, r.err)
			continue
		}
		perNode := float64(r.planBytes) / float64(r.nodes)
		if _, ok := base[r.backend]; !ok {
			base[r.backend] = perNode
		}
		total := r.validateBytes + r.planBytes
		ok := r.validate+r.compile < planMaxTime && total < planMaxBytes && perNode <= planMaxGrowth*base[r.backend]
		note := ""
		if r.refused != "" {
			note = fmt.Sprintf("validate refuses it (at most %d nodes); planned as built in Go", spec.MaxNodes)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\t%s\t%s\n", r.nodes, r.backend, mb(uint64(r.yamlSize)),
			fmtDur(r.validate), mb(r.validateBytes), fmtDur(r.compile), mb(r.planBytes), perNode, mb(r.peak), verdict(ok), note)
	}
	tw.Flush()
}

func mb(n uint64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.0f KB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
}
