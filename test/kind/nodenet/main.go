// Command berth-kind-net is the pod network of berth's kind clusters (make kind-up). On each
// node, as a privileged host-network pod of a DaemonSet (contrib/kind/node/kind/manifests/
// default-cni.yaml), it watches the cluster's Nodes and keeps three things true:
//
//   - the node's CNI configuration (ptp and host-local over the node's pod CIDR, portmap) is in
//     /etc/cni/net.d, so berth reports the network ready once the controller manager has given
//     the node its CIDR;
//   - every other node's pod CIDR is routed through that node's InternalIP (the nodes share one
//     podman network);
//   - what a pod sends outside every node's pod CIDR is masqueraded to the node's address, and
//     pod-to-pod traffic keeps its source address.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "credentials to the API server (default: the pod's service account)")
	nodeName := flag.String("node-name", os.Getenv("NODE_NAME"), "this node's name (default: $NODE_NAME, else the host name)")
	confPath := flag.String("cni-conf", "/etc/cni/net.d/10-kindnet.conflist", "where the node's CNI configuration goes")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *nodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			log.Error("no node name", "error", err)
			os.Exit(1)
		}
		*nodeName = h
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, *kubeconfig, *nodeName, *confPath); err != nil && ctx.Err() == nil {
		log.Error("berth-kind-net", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, kubeconfig, nodeName, confPath string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig) // "": in-cluster
	if err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(client, 10*time.Minute)
	nodes := factory.Core().V1().Nodes()
	changed := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := nodes.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: poke, DeleteFunc: poke, UpdateFunc: func(_, n any) { poke(n) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	log.Info("watching nodes", "node", nodeName)

	var last string
	resync := time.NewTicker(30 * time.Second) // routes or rules removed by hand come back
	defer resync.Stop()
	for {
		list, err := nodes.Lister().List(labels.Everything())
		if err != nil {
			return err
		}
		state, err := desired(list, nodeName)
		if err != nil {
			log.Info("waiting", "reason", err)
		} else if err := apply(state, confPath); err != nil {
			log.Error("apply", "error", err)
		} else if s := fmt.Sprint(state); s != last {
			log.Info("applied", "podCIDRs", state.own, "routes", len(state.routes))
			last = s
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-resync.C:
		}
	}
}

// state is what this node should have.
type state struct {
	own    []netip.Prefix              // this node's pod CIDRs
	all    []netip.Prefix              // every node's pod CIDRs
	routes map[netip.Prefix]netip.Addr // another node's pod CIDR: through its InternalIP
}

// desired computes the node's network from the cluster's Nodes.
func desired(list []*corev1.Node, self string) (state, error) {
	s := state{routes: map[netip.Prefix]netip.Addr{}}
	for _, n := range list {
		var cidrs []netip.Prefix
		for _, c := range n.Spec.PodCIDRs {
			p, err := netip.ParsePrefix(c)
			if err != nil {
				return s, fmt.Errorf("node %s: pod CIDR %q: %w", n.Name, c, err)
			}
			cidrs = append(cidrs, p.Masked())
		}
		s.all = append(s.all, cidrs...)
		if n.Name == self {
			s.own = cidrs
			continue
		}
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			ip, err := netip.ParseAddr(a.Address)
			if err != nil {
				continue
			}
			for _, c := range cidrs {
				if c.Addr().Is4() == ip.Is4() {
					s.routes[c] = ip
				}
			}
		}
	}
	if len(s.own) == 0 {
		return s, fmt.Errorf("node %s has no pod CIDR yet", self)
	}
	slices.SortFunc(s.all, func(a, b netip.Prefix) int { return strings.Compare(a.String(), b.String()) })
	return s, nil
}

// conflist is the node's CNI configuration: a point-to-point link per pod, addresses from the
// node's pod CIDRs, host ports through portmap.
func conflist(own []netip.Prefix) ([]byte, error) {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, p := range own {
		ranges = append(ranges, []map[string]string{{"subnet": p.String()}})
		if p.Addr().Is4() {
			routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
		} else {
			routes = append(routes, map[string]string{"dst": "::/0"})
		}
	}
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": false,
				"ipam":   map[string]any{"type": "host-local", "ranges": ranges, "routes": routes},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}, "", "  ")
}

// apply makes the node match s: the CNI file (written only when it changes, atomically), the
// routes, and the masquerade chain.
func apply(s state, confPath string) error {
	conf, err := conflist(s.own)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(confPath); err != nil || !bytes.Equal(old, conf) {
		if err := os.MkdirAll(filepath.Dir(confPath), 0o755); err != nil {
			return err
		}
		tmp := confPath + ".tmp"
		if err := os.WriteFile(tmp, conf, 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, confPath); err != nil {
			return err
		}
	}
	for cidr, via := range s.routes {
		if out, err := exec.Command("ip", "route", "replace", cidr.String(), "via", via.String()).CombinedOutput(); err != nil {
			return fmt.Errorf("route %s via %s: %v: %s", cidr, via, err, out)
		}
	}
	return masquerade(s)
}

// masqChain is the nat chain of the pods' outbound masquerade.
const masqChain = "BERTH-KIND-MASQ"

// masquerade writes the nat chain whole, with iptables-restore: traffic from this node's pods
// to any pod CIDR returns untouched, the rest is masqueraded.
func masquerade(s state) error {
	for _, family := range []struct {
		restore, save string
		v4            bool
	}{{"iptables-restore", "iptables-save", true}, {"ip6tables-restore", "ip6tables-save", false}} {
		var own, all []netip.Prefix
		for _, p := range s.own {
			if p.Addr().Is4() == family.v4 {
				own = append(own, p)
			}
		}
		if len(own) == 0 {
			continue
		}
		for _, p := range s.all {
			if p.Addr().Is4() == family.v4 {
				all = append(all, p)
			}
		}
		var b strings.Builder
		b.WriteString("*nat\n:" + masqChain + " - [0:0]\n")
		for _, p := range all {
			fmt.Fprintf(&b, "-A %s -d %s -j RETURN\n", masqChain, p)
		}
		fmt.Fprintf(&b, "-A %s -j MASQUERADE\n", masqChain)
		saved, err := exec.Command(family.save, "-t", "nat").Output()
		if err != nil {
			return fmt.Errorf("%s: %w", family.save, err)
		}
		for _, p := range own {
			jump := fmt.Sprintf("-A POSTROUTING -s %s -j %s", p, masqChain)
			if !bytes.Contains(saved, []byte(jump+"\n")) {
				b.WriteString(jump + "\n")
			}
		}
		b.WriteString("COMMIT\n")
		cmd := exec.Command(family.restore, "--noflush")
		cmd.Stdin = strings.NewReader(b.String())
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", family.restore, err, out)
		}
	}
	return nil
}
