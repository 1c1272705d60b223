// Command berthd is berth's daemon: a Kubernetes CRI runtime over containerd and CNI.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/berth-runtime/berth/cni"
	"github.com/berth-runtime/berth/config"
	"github.com/berth-runtime/berth/cri"
	"github.com/berth-runtime/berth/engine"
	"github.com/berth-runtime/berth/image"
	"github.com/berth-runtime/berth/runtime"
	"github.com/berth-runtime/berth/runtime/streaming"
	"github.com/berth-runtime/berth/version"
)

func main() {
	cfg, err := config.Parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "berthd: %v\n", err)
		os.Exit(2)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(engine.GCPercent)
	}
	level, _ := config.ParseLogLevel(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	if err := run(cfg, log); err != nil {
		log.Error("berthd failed", "error", err)
		os.Exit(1)
	}
}

// run serves CRI until SIGTERM or SIGINT. Stopping leaves the managed containerd and every
// container running.
func run(cfg config.Config, log *slog.Logger) error {
	log.Info("starting berthd", "version", version.Version, "listen", cfg.Listen, "root", cfg.Root, "state", cfg.State)
	for _, d := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	// Claim the socket first: a second berthd pointed at a live socket stops here, before it
	// touches any containerd.
	l, err := cri.Listen(cfg.Listen)
	if err != nil {
		return err
	}
	defer l.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	address := cfg.ContainerdAddress
	// With an external containerd berth knows its address only: it cleans up after shims but
	// leaves starting them to containerd.
	shim := runtime.ShimConfig{Address: strings.TrimPrefix(address, "unix://")}
	criu := cfg.CRIU
	if address == "" {
		m := &engine.Managed{
			Binary: cfg.ContainerdBinary, RootDir: cfg.Root, StateDir: cfg.State,
			LogLevel: containerdLogLevel(cfg.LogLevel), Logger: log.With("component", "engine"),
		}
		if err := m.Start(30 * time.Second); err != nil {
			// Keep serving: Status reports RuntimeReady=false until containerd answers.
			log.Error("managed containerd is not ready", "error", err)
		}
		defer m.Close()
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "berth", Name: "containerd_restarts_total",
			Help: "Times the managed containerd died and was restarted.",
		}, func() float64 { return float64(m.Restarts()) }))
		address = m.Address()
		shim = runtime.ShimConfig{Address: address, Binary: m.ShimBinary(), ContainerdBinary: m.Binary, TTRPCAddress: m.TTRPCAddress(),
			BundleDir: m.TaskBundleDir()}
		if criu == "" {
			criu = m.OnPath("criu")
		}
	} else if criu == "" {
		criu, _ = exec.LookPath("criu")
	}
	client, err := runtime.Connect(address)
	if err != nil {
		return err
	}
	defer client.Close()
	images := image.New(client, image.Options{
		RegistryConfigDir: cfg.RegistryConfigDir,
		ProgressTimeout:   time.Duration(cfg.ImagePullProgressTimeout),
		Logger:            log.With("component", "image"),
		Metrics:           image.NewMetrics(reg),
	})
	// containerd's temporary mounts (an image's root read for its users and volumes) go under
	// berth's state, where a restart finds what a killed berthd left, not in the node's /tmp.
	tempMounts := filepath.Join(cfg.State, "tmpmounts")
	if err := mount.SetTempMountLocation(tempMounts); err != nil {
		return fmt.Errorf("temporary mount directory: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(tempMounts); err == nil {
		tempMounts = resolved // as containerd keeps it, for the restart's look at mountinfo
	}
	network := cni.NewConfig(cfg.CNIConfDir, cfg.CNIBinDirs)
	podNetwork := cni.NewNetwork(network, filepath.Join(cfg.Root, "cni-cache"))
	podNetwork.Metrics = cni.NewMetrics(reg)
	rt := runtime.New(client, runtime.Options{
		StateDir: cfg.State,
		RootDir:  cfg.Root,
		Network:  podNetwork,
		Logger:   log.With("component", "runtime"),

		PauseBinary:        pauseBinary(),
		PauseRootfsDir:     filepath.Join(cfg.Root, "pause-rootfs"),
		Images:             images,
		SeccompProfileRoot: filepath.Join(cfg.Root, "seccomp"),
		CgroupDriver:       runtime.CgroupDriver(cfg.CgroupDriver),
		Shim:               shim,

		TolerateMissingHugetlb: cfg.TolerateMissingHugetlbController,
		OwnShims:               cfg.ShimPrestart,
		Handlers:               cfg.RuntimeHandlers,
		Annotations:            cfg.AnnotationAllowlists(),
		Ulimits:                ulimits(cfg.DefaultUlimits),
		UnprivilegedPorts:      cfg.EnableUnprivilegedPorts,
		UnprivilegedICMP:       cfg.EnableUnprivilegedICMP,
		CDISpecDirs:            cfg.CDISpecDirs,
		TempMountDir:           tempMounts,
		Restore:                runtime.RestoreOptions{Enabled: cfg.RestoreCheckpoints, ArchiveDirs: cfg.CheckpointArchiveDirs},
		CRIU:                   criu,
	})
	reg.MustRegister(rt.Collector())
	loadCtx, stopLoading := context.WithCancel(context.Background())
	defer stopLoading()
	rt.LoadInBackground(loadCtx)
	streams, err := streaming.New(streaming.Options{
		Address: cfg.StreamAddress, TLSCertFile: cfg.StreamTLSCertFile, TLSKeyFile: cfg.StreamTLSKeyFile,
	}, rt)
	if err != nil {
		return err
	}
	defer streams.Close()
	podCIDRs, err := cni.NewPodCIDRs(filepath.Join(cfg.Root, "pod-cidrs.json"), cfg.CNIConfTemplate, cfg.CNIConfDir)
	if err != nil {
		return err
	}
	rs := cri.NewRuntimeService(rt, network, rt, rt, rt, rt, streams, cri.RuntimeOptions{
		CgroupDriver: runtime.CgroupDriver(cfg.CgroupDriver),
		Config:       cfg,
		PodCIDRs:     podCIDRs,
		Checkpoints:  rt,
	})
	srv := cri.NewServer(rs, cri.NewImageService(images), log.With("component", "cri"), cri.NewMetrics(reg))

	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(l) }()
	go func() {
		if err := streams.Serve(); err != nil {
			errc <- fmt.Errorf("streaming server: %w", err)
		}
	}()
	log.Info("serving streams (exec, attach, port-forward)", "address", streams.Address())

	if cfg.MetricsAddress != "" {
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		hs, err := serveHTTP("metrics endpoint", cfg.MetricsAddress, mux, errc, log)
		if err != nil {
			srv.Stop(0)
			return err
		}
		defer hs.Close()
	}
	if cfg.DebugAddress != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		hs, err := serveHTTP("profiling endpoint", cfg.DebugAddress, mux, errc, log)
		if err != nil {
			srv.Stop(0)
			return err
		}
		defer hs.Close()
	}
	log.Info("serving CRI", "socket", cfg.Listen, "containerd", address)
	// Under systemd: READY once the socket serves, then the watchdog while it answers.
	self, err := grpc.NewClient("unix://"+cfg.Listen, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop(0)
		return err
	}
	defer self.Close()
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	defer stopNotify()
	notifyReady(notifyCtx, self, log)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-sigs:
		log.Info("stopping berthd; containerd and containers keep running", "signal", sig.String())
		notifyStopping()
		srv.Stop(5 * time.Second)
		return nil
	case err := <-errc:
		srv.Stop(0)
		return err
	}
}

// serveHTTP serves handler on address (host:port) until the returned server is closed; a failure
// to serve is sent on errc.
func serveHTTP(what, address string, handler http.Handler, errc chan<- error, log *slog.Logger) (*http.Server, error) {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("%s: %w", what, err)
		}
	}()
	log.Info("serving "+what, "address", l.Addr().String())
	return hs, nil
}

// containerdLogLevel maps berth's log level onto containerd's names.
func containerdLogLevel(level string) string {
	if level == "warn" {
		return "warning"
	}
	return level
}

// pauseBinary is berth-pause, installed beside berthd.
func pauseBinary() string {
	exe, err := os.Executable()
	if err != nil {
		return "berth-pause"
	}
	return filepath.Join(filepath.Dir(exe), "berth-pause")
}

// ulimits turns the default-ulimits key (validated with the config) into the spec's rlimits.
func ulimits(keys []string) []specs.POSIXRlimit {
	var out []specs.POSIXRlimit
	for _, k := range keys {
		u, _ := config.ParseUlimit(k)
		out = append(out, specs.POSIXRlimit{Type: u.Type, Soft: u.Soft, Hard: u.Hard})
	}
	return out
}
