// Package streaming serves the CRI streaming endpoints (exec, attach, port-forward) with
// k8s.io/cri-streaming's CRI streaming server: Exec, Attach and PortForward calls hand out one-time
// URLs on it, and the kubelet (or crictl) connects to them with SPDY or WebSockets. The URLs
// carry berth's own tokens, not the library's (tokens.go).
package streaming

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	kubestreaming "k8s.io/cri-streaming/pkg/streaming"
)

// Options configure the server.
type Options struct {
	// Address is host:port to listen on; port 0 picks a free port.
	Address string
	// TLSCertFile and TLSKeyFile, both or neither, serve HTTPS.
	TLSCertFile, TLSKeyFile string
}

// Server is the streaming server, listening from New on.
type Server struct {
	kubestreaming.Server
	listener net.Listener
	http     *http.Server
	tokens   *tokens
}

// New listens on opts.Address and returns a server whose URLs name the address it got.
func New(opts Options, rt kubestreaming.Runtime) (*Server, error) {
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("stream-tls-cert-file and stream-tls-key-file go together")
	}
	cfg := kubestreaming.DefaultConfig
	cfg.Addr = opts.Address
	l, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("streaming server: %w", err)
	}
	scheme := "http"
	if opts.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCertFile, opts.TLSKeyFile)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("streaming server TLS: %w", err)
		}
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l = tls.NewListener(l, cfg.TLSConfig)
		scheme = "https"
	}
	// The URLs carry the address actually bound (port 0 becomes the one the kernel chose).
	cfg.BaseURL = &url.URL{Scheme: scheme, Host: l.Addr().String()}
	s, err := kubestreaming.NewServer(cfg, rt)
	if err != nil {
		l.Close()
		return nil, err
	}
	// No read or write timeouts: a stream lives as long as the exec or attach does; idle
	// streams are closed by the library (StreamIdleTimeout).
	srv := &Server{Server: s, listener: l, tokens: newTokens()}
	srv.http = &http.Server{Handler: http.HandlerFunc(srv.serve), ReadHeaderTimeout: cfg.StreamCreationTimeout}
	return srv, nil
}

// GetExec hands out a URL for an exec: one of berth's tokens (see tokens.go).
func (s *Server) GetExec(req *runtimeapi.ExecRequest) (*runtimeapi.ExecResponse, error) {
	resp, err := s.Server.GetExec(req)
	if err == nil {
		resp.Url, err = s.seal(resp.Url)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// GetAttach hands out a URL for an attach: one of berth's tokens.
func (s *Server) GetAttach(req *runtimeapi.AttachRequest) (*runtimeapi.AttachResponse, error) {
	resp, err := s.Server.GetAttach(req)
	if err == nil {
		resp.Url, err = s.seal(resp.Url)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// GetPortForward hands out a URL for a port-forward: one of berth's tokens.
func (s *Server) GetPortForward(req *runtimeapi.PortForwardRequest) (*runtimeapi.PortForwardResponse, error) {
	resp, err := s.Server.GetPortForward(req)
	if err == nil {
		resp.Url, err = s.seal(resp.Url)
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// seal replaces the library's URL with one of berth's tokens standing for it.
func (s *Server) seal(libraryURL string) (string, error) {
	u, err := url.Parse(libraryURL)
	if err != nil {
		return "", fmt.Errorf("streaming URL: %w", err)
	}
	token, err := s.tokens.issue(u.Path)
	if errors.Is(err, errTooManyStreams) {
		return "", status.Error(codes.ResourceExhausted, err.Error())
	}
	if err != nil {
		return "", err
	}
	u.Path, u.RawPath = tokenPrefix+token, ""
	return u.String(), nil
}

// serve serves berth's token URLs, each once, by the library's handler; nothing else.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, tokenPrefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	path, ok := s.tokens.redeem(token)
	if !ok {
		http.NotFound(w, r)
		return
	}
	r.URL.Path, r.URL.RawPath = path, ""
	s.Server.ServeHTTP(w, r)
}

// Address is where the server listens.
func (s *Server) Address() string { return s.listener.Addr().String() }

// Serve serves until Close; it returns nil after Close.
func (s *Server) Serve() error {
	if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close stops the server and every stream under way.
func (s *Server) Close() error { return s.http.Close() }
