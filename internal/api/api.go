// Package api serves Cairn's HTTP endpoints: Prometheus metrics, health and
// readiness, and the read and write API of the operators.
//
// Every request goes through one middleware (Server.ServeHTTP) before the
// mux: bearer-token authorization (auth.go), a body-size limit, and for
// mutations an audit log line (audit.go). Handlers never see a request that
// was refused.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Options configures a Server. Zero durations and sizes take the defaults
// documented on each field (EnsureDefaults).
type Options struct {
	// Addr is the listen address, e.g. "127.0.0.1:8080" (":0" picks a port).
	Addr string
	// Token authorizes every request: mutations (any method but GET and
	// HEAD) need it, and it is accepted wherever ReadToken is. Empty: every
	// mutation is refused with 403, unless InsecureMutations.
	Token string
	// ReadToken, if set, is required (or Token) for every GET and HEAD
	// except /healthz, /readyz and /metrics. Empty: reads are open.
	ReadToken string
	// InsecureMutations lets mutations through without a token when Token
	// is empty. Validate refuses it together with Token. Loopback-only use
	// is the caller's rule (cmd/processor enforces it).
	InsecureMutations bool
	// MaxBodyBytes bounds every request body, unless its route was
	// registered with HandleWithLimit. Default 1 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, and, as
	// net/http does, cancels the request's context when it expires while
	// the handler runs. Long handlers call ExtendDeadlines. Default 30s.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, counted from the end of the
	// request headers. Streaming handlers call ExtendDeadlines before each
	// chunk. Default 60s.
	WriteTimeout time.Duration
	// IdleTimeout bounds how long a keep-alive connection waits for its
	// next request. Default 2m.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. Default 64 KiB.
	MaxHeaderBytes int
	// Logger receives the audit lines (info) of every mutation. Default
	// slog.Default().
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultReadHeaderTimeout = 5 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 60 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// EnsureDefaults fills the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.ReadHeaderTimeout <= 0 {
		o.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = DefaultReadTimeout
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.MaxHeaderBytes <= 0 {
		o.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports contradictory or unusable options: both a token and
// InsecureMutations, and tokens that could never match a request.
func (o *Options) Validate() error {
	var errs []error
	if o.InsecureMutations && o.Token != "" {
		errs = append(errs, errors.New("insecure mutations and a mutation token: choose one"))
	}
	if err := CheckToken(o.Token); err != nil {
		errs = append(errs, fmt.Errorf("mutation token: %w", err))
	}
	if err := CheckToken(o.ReadToken); err != nil {
		errs = append(errs, fmt.Errorf("read token: %w", err))
	}
	return errors.Join(errs...)
}

// Server is the HTTP server of one instance. Handlers are added with Handle
// and HandleWithLimit before Serve; after that the server is safe for
// concurrent requests (its route table is only read).
type Server struct {
	opts   Options
	auth   *authorizer
	mux    *http.ServeMux
	limits map[string]int64 // body limit by route pattern, for HandleWithLimit routes
	srv    *http.Server
	ln     net.Listener
}

// New returns a server with /metrics (gatherer), /healthz and /readyz
// (ready). It listens on opts.Addr at once, so that the address is known
// (and a busy port is an error) before the engine starts.
func New(opts Options, gatherer prometheus.Gatherer, ready func() bool) (*Server, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, auth: newAuthorizer(opts), mux: http.NewServeMux(), limits: map[string]int64{}, ln: ln}
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	s.Handle("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	s.Handle("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "restoring or not in the group yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: opts.ReadHeaderTimeout, ReadTimeout: opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout, IdleTimeout: opts.IdleTimeout, MaxHeaderBytes: opts.MaxHeaderBytes,
		ErrorLog: slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug)}
	return s, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Handle registers h for pattern (net/http patterns, e.g. "GET /v1/x/{id}"),
// with the default body limit (Options.MaxBodyBytes).
func (s *Server) Handle(pattern string, h http.HandlerFunc) { s.mux.HandleFunc(pattern, h) }

// HandleWithLimit registers h for pattern with a body limit of maxBody bytes
// instead of the default. A body over the limit makes the handler's reads
// fail with *http.MaxBytesError.
func (s *Server) HandleWithLimit(pattern string, maxBody int64, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, h)
	s.limits[pattern] = maxBody
}

// ServeHTTP is the middleware in front of every route: it authorizes the
// request, limits its body, and audits it if it is a mutation. It is safe
// for concurrent use once no more routes are added.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isRead(r.Method) {
		if d := s.auth.authorize(r); !d.allowed() {
			d.write(w)
			return
		}
		s.limitBody(w, r)
		s.mux.ServeHTTP(w, r)
		return
	}
	s.serveMutation(w, r)
}

// limitBody wraps r.Body in the route's size limit. A request without a
// body costs nothing; one with a body costs a second route lookup.
func (s *Server) limitBody(w http.ResponseWriter, r *http.Request) *countingBody {
	if r.Body == nil || r.Body == http.NoBody {
		return &countingBody{}
	}
	limit := s.opts.MaxBodyBytes
	if _, pattern := s.mux.Handler(r); pattern != "" {
		if l, ok := s.limits[pattern]; ok {
			limit = l
		}
	}
	body := &countingBody{rc: http.MaxBytesReader(w, r.Body, limit)}
	r.Body = body
	return body
}

// Serve serves until ctx is canceled.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.srv.Shutdown(sctx)
	}()
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ExtendDeadlines lets a long request outlive the server's ReadTimeout and
// WriteTimeout: it moves both deadlines of the connection to d from now. A
// handler that streams (upload progress, an export) calls it before each
// chunk, so that a long transfer goes on while a stalled client still times
// out after d. It must be called, too, by a handler that runs longer than
// ReadTimeout after reading its body: net/http cancels the request's
// context when the read deadline passes. A ResponseWriter that cannot set
// deadlines (httptest's) is left alone.
func ExtendDeadlines(w http.ResponseWriter, d time.Duration) {
	rc := http.NewResponseController(w)
	t := time.Now().Add(d)
	_ = rc.SetReadDeadline(t)
	_ = rc.SetWriteDeadline(t)
}

// WriteJSON writes v as indented JSON with status code.
func WriteJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
