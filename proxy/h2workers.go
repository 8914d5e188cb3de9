package proxy

import "sync"

// streamWorkers runs stream handlers on reused goroutines. Why: a stream's
// handler goes deep (routing, balancer, the h2c client, hpack) and a new
// goroutine starts with a small stack, so each one grew and copied its
// stack two or three times: a tenth of the proxy's CPU under h2load
// (runtime.morestack). A worker keeps its grown stack for the next
// stream. Idle workers wait LIFO (the warmest first); beyond
// maxIdleStreamWorkers, a worker that finishes exits instead.
type streamWorkers struct {
	mu      sync.Mutex
	idle    []chan *h2ServerStream
	stopped bool
	wg      sync.WaitGroup
}

const maxIdleStreamWorkers = 256

// run starts s's handler on an idle worker or a new one.
func (w *streamWorkers) run(s *h2ServerStream) {
	w.mu.Lock()
	if n := len(w.idle); n > 0 && !w.stopped {
		ch := w.idle[n-1]
		w.idle = w.idle[:n-1]
		w.mu.Unlock()
		ch <- s // buffered: never blocks
		return
	}
	w.wg.Add(1)
	w.mu.Unlock()
	go w.loop(s)
}

func (w *streamWorkers) loop(s *h2ServerStream) {
	defer w.wg.Done()
	ch := make(chan *h2ServerStream, 1)
	for {
		s.run()
		w.mu.Lock()
		if w.stopped || len(w.idle) >= maxIdleStreamWorkers {
			w.mu.Unlock()
			return
		}
		w.idle = append(w.idle, ch)
		w.mu.Unlock()
		var ok bool
		if s, ok = <-ch; !ok {
			return
		}
	}
}

// stop ends the idle workers and waits for the busy ones (whose streams
// the caller has already ended).
func (w *streamWorkers) stop() {
	w.mu.Lock()
	w.stopped = true
	for _, ch := range w.idle {
		close(ch)
	}
	w.idle = nil
	w.mu.Unlock()
	w.wg.Wait()
}
