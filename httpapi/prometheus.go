package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lodestone-fleet/lodestone"
)

// countsTTL is how long a scrape reuses the fleet's row counts: counting large tables scans an index, which a
// scraper every few seconds (or several scrapers) must not repeat each time.
const countsTTL = 5 * time.Second

// promMetrics is the registry behind GET /metrics/prometheus: ferrite-server's families with its names, types and
// HELP texts (spec §2.12; its gauges keep their _total names so dashboards keep working), request latency per route
// pattern, and the Go runtime and process collectors.
type promMetrics struct {
	reg            *prometheus.Registry
	ingestRequests prometheus.Counter
	ingestChunks   prometheus.Counter
	sseConnections prometheus.Counter
	latency        *prometheus.HistogramVec
	handler        http.Handler
}

func (s *Server) initMetrics() {
	m := &promMetrics{reg: prometheus.NewRegistry()}
	m.ingestRequests = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferrite_ingest_requests_total",
		Help: "Total ingest HTTP requests since startup."})
	m.ingestChunks = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferrite_ingest_chunks_total",
		Help: "Total chunks ingested since startup."})
	m.sseConnections = prometheus.NewCounter(prometheus.CounterOpts{Name: "ferrite_sse_connections_total",
		Help: "Total SSE connections opened since startup."})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lodestone_http_request_duration_seconds",
		Help:    "Time to answer an HTTP request, by route pattern and status code.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}},
		[]string{"route", "code"})
	m.reg.MustRegister(m.ingestRequests, m.ingestChunks, m.sseConnections, m.latency,
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ferrite_auth_failures_total",
			Help: "Total authentication failures since startup."},
			func() float64 { return float64(s.authFailed.Load()) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if s.deps.Counts != nil {
		m.reg.MustRegister(&fleetCollector{counter: s.deps.Counts, log: s})
	}
	if s.deps.Stability != nil {
		m.reg.MustRegister(&stabilityCollector{reader: s.deps.Stability, log: s})
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: promLogger{s}})
	s.prom = m
}

type promLogger struct{ s *Server }

func (l promLogger) Println(v ...any) { l.s.log.Warn("prometheus exposition", "err", v) }

// observe records the latency of a route. Event streams are left out: their duration is how long a client
// watched, not how fast the server answered.
func (s *Server) observe(pattern string, h http.HandlerFunc) http.HandlerFunc {
	if pattern == "GET /events/stream" {
		return h
	}
	// The route's 200 series, looked up once: hashing the labels on every request costs more than the
	// observation (ingest answers tens of thousands of requests a second). Created on first use, so that a route
	// never answered has no series.
	var ok atomic.Pointer[prometheus.Observer]
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		code := rec.code()
		var o prometheus.Observer
		if p := ok.Load(); p != nil && code == http.StatusOK {
			o = *p
		} else {
			o = s.prom.latency.WithLabelValues(pattern, strconv.Itoa(code))
			if code == http.StatusOK {
				ok.Store(&o)
			}
		}
		o.Observe(time.Since(start).Seconds())
	}
}

func (s *Server) prometheusMetrics(w http.ResponseWriter, r *http.Request) error {
	s.prom.handler.ServeHTTP(w, r)
	return nil
}

// fleetCollector reports ferrite's row-count gauges from a cached FleetCounts.
type fleetCollector struct {
	counter lodestone.FleetCounter
	log     *Server

	mu   sync.Mutex
	at   time.Time
	last lodestone.FleetCounts
	ok   bool
}

var fleetDescs = []struct {
	desc  *prometheus.Desc
	value func(c *lodestone.FleetCounts) int64
}{
	{prometheus.NewDesc("ferrite_devices_total", "Total number of registered devices.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.Devices }},
	{prometheus.NewDesc("ferrite_devices_online", "Number of devices with status 'online'.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.DevicesOnline }},
	{prometheus.NewDesc("ferrite_faults_total", "Total number of stored fault events.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.Faults }},
	{prometheus.NewDesc("ferrite_metrics_total", "Total number of stored metric rows.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.Metrics }},
	{prometheus.NewDesc("ferrite_reboots_total", "Total number of stored reboot events.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.Reboots }},
	{prometheus.NewDesc("ferrite_groups_total", "Total number of device groups.", nil, nil),
		func(c *lodestone.FleetCounts) int64 { return c.Groups }},
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range fleetDescs {
		ch <- d.desc
	}
}

// Collect counts at most once per countsTTL; concurrent scrapes wait for the one count. When counting fails the
// gauges are left out of the scrape (and the failure logged) rather than reported as zero.
func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	if time.Since(c.at) >= countsTTL {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		counts, err := c.counter.FleetCounts(ctx)
		cancel()
		c.at, c.last, c.ok = time.Now(), counts, err == nil
		if err != nil {
			c.log.log.Warn("counting the fleet for prometheus failed", "err", err)
		}
	}
	counts, ok := c.last, c.ok
	c.mu.Unlock()
	if !ok {
		return
	}
	for _, d := range fleetDescs {
		ch <- prometheus.MustNewConstMetric(d.desc, prometheus.GaugeValue, float64(d.value(&counts)))
	}
}
