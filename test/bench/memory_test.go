package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// BenchmarkServerMemory measures resident memory of real processes, with
// 200 injected workspaces in the cluster: `opencode-injector serve` idle
// once its claim provisioner has reconciled every workspace (its informers
// hold them all) beside the patch-echo server idle, a mode of the same
// binary (see serverBinaries), then both their peaks under the
// same open-loop load (a fixed rate of reviews, at most 16 in flight), each
// round a fresh process of each, interleaved. A fixed rate, not a closed
// loop: a faster server would churn more garbage. Run it once:
// -benchtime 1x.
func BenchmarkServerMemory(b *testing.B) {
	servers, body := serverSetup(b)
	d, rate := loadDuration(), envInt("BENCH_RATE", 500) // reviews/s
	const concurrency, rounds = 16, 3
	var idle, peak = map[string][]int64{}, map[string][]int64{}
	for round := 1; round <= rounds; round++ {
		for _, name := range []string{ours, patchEcho} {
			p := servers.start(b, name)
			p.waitListening(b)
			if name == ours {
				p.waitReconciled(b, workspaces)
			}
			time.Sleep(time.Second) // settled
			idleNow := p.memory(b)
			p.waitUp(b, body)
			sent, done := openLoop(p.url, body, rate, concurrency, d)
			hwm := p.memory(b).peak
			p.stop()
			idle[name], peak[name] = append(idle[name], idleNow.rss), append(peak[name], hwm)
			fmt.Printf("round %d %-24s idle RSS %.1f MiB (anonymous %.1f, file-backed %.1f); %d reviews/s for %v (%d answered): peak RSS %.1f MiB\n",
				round, name, mib(idleNow.rss), mib(idleNow.anon), mib(idleNow.file), rate, d, done, mib(hwm))
			if done < sent*9/10 {
				fmt.Printf("round %d %-24s answered %d of %d reviews: below the rate, its peak is not comparable\n", round, name, done, sent)
			}
		}
	}
	// The patch-echo server's idle memory is the floor of any server in
	// this binary: it holds no workspace, no informer and no manager.
	const idleTarget = 32 << 20
	idleMax, echoIdleMax := slicesMax(idle[ours]), slicesMax(idle[patchEcho])
	binary := "the same binary"
	if servers.injector != servers.baselines {
		binary = "not ours: BENCH_INJECTOR_BINARY is set"
	}
	fmt.Printf("idle RSS of the patch-echo server (%s, no manager): %.1f MiB at most over %d rounds\n", binary, mib(echoIdleMax), rounds)
	fmt.Printf("idle RSS with %d workspaces: %.1f MiB at most over %d rounds, %.1f MiB above the patch-echo server's (target <= 32 MiB): %s\n",
		workspaces, mib(idleMax), rounds, mib(idleMax-echoIdleMax), verdict(idleMax <= idleTarget))
	ratio := float64(slicesMax(peak[ours])) / float64(slicesMax(peak[patchEcho]))
	fmt.Printf("peak RSS at %d reviews/s, concurrency %d: %.1f MiB vs patch-echo's %.1f MiB (highest of %d rounds): %.2fx (target <= 1.15x): %s\n",
		rate, concurrency, mib(slicesMax(peak[ours])), mib(slicesMax(peak[patchEcho])), rounds, ratio, verdict(ratio <= 1.15))
}

func slicesMax(v []int64) int64 {
	var m int64
	for _, x := range v {
		m = max(m, x)
	}
	return m
}

// openLoop sends body to url at rate reviews a second for d, from at most
// c connections: a review waits for a free connection rather than being
// skipped, so a slow server is sent as much as a fast one. It returns how
// many reviews were sent and how many answered.
func openLoop(url string, body []byte, rate, c int, d time.Duration) (sent, answered int) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, MaxIdleConnsPerHost: c, MaxConnsPerHost: c} //nolint:gosec // a self-signed test certificate
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	due := make(chan struct{}, rate*int(d.Seconds()+1))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range due {
				resp, err := client.Post(url, "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == http.StatusOK {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		}()
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for ctx.Err() == nil {
		select {
		case <-tick.C:
			due <- struct{}{}
			sent++
		case <-ctx.Done():
		}
	}
	close(due)
	wg.Wait()
	return sent, answered
}
