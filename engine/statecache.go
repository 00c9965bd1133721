package engine

// cacheShare is the read-cache budget of a partition about to be added:
// Config.StateCacheBytes split evenly over the owned partitions and it.
// rebudgetCaches evens the shares out once an assignment is done.
func (e *Engine) cacheShare() int64 {
	return e.cfg.StateCacheBytes / int64(e.ownedCount()+1)
}

// rebudgetCaches gives every owned partition an equal share of
// Config.StateCacheBytes. A partition's cache shrinks to its new share at
// its next commit. Called after partitions are assigned or revoked.
func (e *Engine) rebudgetCaches() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.workers) == 0 {
		return
	}
	share := e.cfg.StateCacheBytes / int64(len(e.workers))
	for _, w := range e.workers {
		w.core.cache.SetBudget(share) // atomic: the worker may be running
	}
}

// observeCache adds the read cache's counters since the last call to the
// metrics. It runs on the worker's goroutine, after a commit or a drop, so
// the hot path only bumps the cache's own counters.
func (w *worker) observeCache() {
	s := w.core.cache.Stats()
	m := w.e.m
	m.cacheHits.Add(float64(s.Hits - w.cacheSeen.Hits))
	m.cacheMisses.Add(float64(s.Misses - w.cacheSeen.Misses))
	m.cacheEvictions.Add(float64(s.Evictions - w.cacheSeen.Evictions))
	m.cacheBytes.WithLabelValues(w.label).Set(float64(s.Bytes))
	w.cacheSeen = s
}
