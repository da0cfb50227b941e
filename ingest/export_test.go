package ingest

// Queued is the number of requests waiting in w's queue, so that tests can wait for a state instead of sleeping.
func Queued(w *Writer) int { return w.gc.Len() }

// Waiting is the number of w's committers holding a group that wait for their turn (see SetCommitters).
func Waiting(w *Writer) int { return w.gc.Waiting() }
