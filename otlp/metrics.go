package otlp

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// metrics are detritus' metric families (§6), under the same names so its dashboards keep working, plus a few of
// lodestone's own. They live in a registry per server, so embedded servers and tests do not share counters.
type metrics struct {
	reg *prometheus.Registry

	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	bytesIngested   *prometheus.CounterVec
	dedupHits       prometheus.Counter
	validation      *prometheus.CounterVec
	queueDepth      prometheus.Gauge
	logRecords      prometheus.Counter
	rejected        prometheus.Counter
	commitSeconds   prometheus.Histogram
	janitorCycles   prometheus.Counter
	janitorBlobs    prometheus.Counter
	janitorBytes    prometheus.Counter
	janitorDuration *prometheus.HistogramVec
	janitorLogs     prometheus.Gauge
	janitorIndexes  prometheus.Gauge
	janitorLastBlob prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detritus_requests_total",
		Help: "Handled requests by endpoint and status."}, []string{"endpoint", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "detritus_request_duration_seconds",
		Help: "Handler latency.", Buckets: prometheus.DefBuckets}, []string{"endpoint"})
	m.bytesIngested = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detritus_bytes_ingested_total",
		Help: "Dump bytes received (wire bytes)."}, []string{"endpoint"})
	m.dedupHits = prometheus.NewCounter(prometheus.CounterOpts{Name: "detritus_dedup_hits_total",
		Help: "Crash dumps that were already stored."})
	m.validation = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "detritus_validation_failures_total",
		Help: "Schema rejections."}, []string{"endpoint"})
	m.queueDepth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "detritus_writer_queue_depth",
		Help: "Export requests waiting for the log writer."})
	m.logRecords = prometheus.NewCounter(prometheus.CounterOpts{Name: "lodestone_log_records_committed_total",
		Help: "Log records durably stored."})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{Name: "lodestone_log_records_rejected_total",
		Help: "Log records left out of an export because they cannot be stored (reported as partial success)."})
	m.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lodestone_log_commit_seconds",
		Help: "Time to store one group of log records.", Buckets: prometheus.DefBuckets})
	m.janitorCycles = prometheus.NewCounter(prometheus.CounterOpts{Name: "detritus_janitor_cycles_total",
		Help: "Retention janitor cycles."})
	m.janitorBlobs = prometheus.NewCounter(prometheus.CounterOpts{Name: "detritus_janitor_blobs_freed_total",
		Help: "Blobs deleted by the janitor."})
	m.janitorBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "detritus_janitor_bytes_freed_total",
		Help: "Blob bytes deleted by the janitor."})
	m.janitorDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "detritus_janitor_cycle_duration_seconds", Help: "Janitor cycle time.", Buckets: prometheus.DefBuckets},
		[]string{"result"})
	m.janitorLogs = prometheus.NewGauge(prometheus.GaugeOpts{Name: "detritus_janitor_last_logs_deleted",
		Help: "Log records deleted by the last cycle."})
	m.janitorIndexes = prometheus.NewGauge(prometheus.GaugeOpts{Name: "detritus_janitor_last_indexes_deleted",
		Help: "Crash uploads deleted by the last cycle."})
	m.janitorLastBlob = prometheus.NewGauge(prometheus.GaugeOpts{Name: "detritus_janitor_last_blobs_deleted",
		Help: "Blobs deleted by the last cycle."})
	m.reg.MustRegister(m.requests, m.duration, m.bytesIngested, m.dedupHits, m.validation, m.queueDepth,
		m.logRecords, m.rejected, m.commitSeconds, m.janitorCycles, m.janitorBlobs, m.janitorBytes, m.janitorDuration,
		m.janitorLogs, m.janitorIndexes, m.janitorLastBlob)
	// Labelled families appear only after their first observation; seed the ones detritus' smoke test expects.
	for _, ep := range []string{"logs", "crashes"} {
		m.bytesIngested.WithLabelValues(ep)
		m.duration.WithLabelValues(ep)
	}
	m.janitorDuration.WithLabelValues("ok")
	return m
}

// serveHTTP writes the registry as OpenMetrics 1.0 text.
func (m *metrics) serveHTTP(w http.ResponseWriter, r *http.Request) {
	mfs, err := m.reg.Gather()
	if err != nil {
		http.Error(w, "failed to render metrics: "+err.Error(), http.StatusInternalServerError)
		return
	}
	format := expfmt.NewFormat(expfmt.TypeOpenMetrics)
	w.Header().Set("Content-Type", string(format))
	enc := expfmt.NewEncoder(w, format)
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		c.Close() // writes # EOF
	}
}
