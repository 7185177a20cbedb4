package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/labctl/labctl/emulator/clusterdns"
)

// DNSModelEnv names the environment variable that tells the dns builtin
// where the lab's cluster DNS model is: a JSON file (clusterdns.Model,
// the lab's services and pods) that labctl writes into the pod's state
// directory, much as kubeadm hands CoreDNS its Corefile in a ConfigMap.
const DNSModelEnv = "LABCTL_CLUSTER_DNS"

// maxDNSModel bounds the model file: a lab of MaxServices services and as
// many pods writes well under a megabyte.
const maxDNSModel = 16 << 20

// dnsReloadEvery is how often the server looks for a new model, as
// CoreDNS's reload plugin looks for a new Corefile (every 30s there; a
// lab's changes should show sooner).
const dnsReloadEvery = time.Second

// dnsServer answers the cluster domain over UDP and TCP, from the model
// $LABCTL_CLUSTER_DNS names, reloading it whenever the file changes.
func dnsServer(ctx context.Context, cfg Config, serving func()) error {
	path := os.Getenv(DNSModelEnv)
	if path == "" {
		return fmt.Errorf("$%s names no cluster DNS model (labctl sets it for the cluster DNS pod's container)", DNSModelEnv)
	}
	m, stamp, err := readDNSModel(path)
	if err != nil {
		return err
	}
	srv, err := clusterdns.NewServer(m)
	if err != nil {
		return err
	}
	addr := ":" + strconv.Itoa(cfg.Port)
	pc, err := net.ListenPacket("udp4", addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		pc.Close()
		return err
	}
	fmt.Printf("cluster DNS (%s) on UDP and TCP port %d: %d services, %d pods\n", clusterdns.DefaultDomain, cfg.Port, len(m.Services), len(m.Pods))
	serving()
	go reloadDNS(ctx, srv, path, stamp)
	return srv.Serve(ctx, pc, ln)
}

// reloadDNS reloads the model whenever its file changes, until ctx ends. A
// model that does not read or validate leaves the server answering from
// the last good one.
func reloadDNS(ctx context.Context, srv *clusterdns.Server, path string, stamp time.Time) {
	tick := time.NewTicker(dnsReloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		st, err := os.Stat(path)
		if err != nil || st.ModTime().Equal(stamp) {
			continue
		}
		m, now, err := readDNSModel(path)
		if err == nil {
			err = srv.Reload(m)
		}
		stamp = now
		if err != nil {
			fmt.Fprintf(os.Stderr, "reload: %v (still answering from the previous model)\n", err)
			continue
		}
		fmt.Printf("reloaded: %d services, %d pods\n", len(m.Services), len(m.Pods))
	}
}

// readDNSModel reads the model file and its modification time.
func readDNSModel(path string) (clusterdns.Model, time.Time, error) {
	var m clusterdns.Model
	f, err := os.Open(path)
	if err != nil {
		return m, time.Time{}, fmt.Errorf("cluster DNS model: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return m, time.Time{}, fmt.Errorf("cluster DNS model: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDNSModel+1))
	switch {
	case err != nil:
		return m, time.Time{}, fmt.Errorf("cluster DNS model: %w", err)
	case len(data) > maxDNSModel:
		return m, time.Time{}, fmt.Errorf("cluster DNS model %s: larger than %d bytes", path, maxDNSModel)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, time.Time{}, fmt.Errorf("cluster DNS model %s: %w", path, err)
	}
	if len(m.Services) == 0 && len(m.Pods) == 0 {
		return m, time.Time{}, errors.New("cluster DNS model " + path + " holds no services and no pods")
	}
	return m, st.ModTime(), nil
}
