package engine

import (
	"sync"
	"testing"
)

// TestWorkerRunAfterStop: the loop may hand a task to a worker that a
// revoke stopped in between; that must be a no-op, not a send on a closed
// channel (it panicked after a broker restart under load).
func TestWorkerRunAfterStop(t *testing.T) {
	w := &worker{tasks: make(chan func())}
	go func() {
		for task := range w.tasks {
			task()
		}
	}()
	var wg sync.WaitGroup
	ran := 0
	w.run(&wg, func() { ran++ })
	wg.Wait()
	w.stop()
	w.stop() // idempotent
	w.run(&wg, func() { ran++ })
	wg.Wait()
	if ran != 1 {
		t.Fatalf("ran %d tasks, want 1: a stopped worker must not run", ran)
	}
}

// TestWorkerRunRacesStop runs tasks while another goroutine stops the
// worker; run with -race it also checks the locking.
func TestWorkerRunRacesStop(t *testing.T) {
	for i := 0; i < 200; i++ {
		w := &worker{tasks: make(chan func())}
		go func() {
			for task := range w.tasks {
				task()
			}
		}()
		var wg sync.WaitGroup
		done := make(chan struct{})
		go func() { w.stop(); close(done) }()
		for j := 0; j < 5; j++ {
			w.run(&wg, func() {})
		}
		<-done
		wg.Wait()
	}
}
