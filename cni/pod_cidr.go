package cni

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/template"

	"github.com/containerd/errdefs"
)

// TemplateConfName is the file a CNI config template is rendered into, in the configuration
// directory. It sorts before berth's default 10-berth.conflist, so that it is the network used.
const TemplateConfName = "10-berth-net.conflist"

// PodCIDRs keeps the node's pod CIDRs, which the kubelet sends with UpdateRuntimeConfig (from the
// Node object's spec.podCIDRs) in a state file, so that they survive a restart. With a CNI config
// template it renders the template with them into the configuration directory, for the pods
// created from then on (as containerd's conf_template); without one it only records them.
//
// The template is a Go text/template over TemplateData.
type PodCIDRs struct {
	stateFile, template, confDir string

	mu    sync.Mutex
	cidrs []string
}

// TemplateData is what a CNI config template is rendered with.
type TemplateData struct {
	// PodCIDR is the first pod CIDR.
	PodCIDR string
	// PodCIDRRanges are all pod CIDRs (one per IP family with dual stack).
	PodCIDRRanges []string
	// Routes are the default routes of the families of PodCIDRRanges: 0.0.0.0/0, ::/0.
	Routes []string
}

// NewPodCIDRs loads the recorded pod CIDRs from stateFile and, with a template, renders it again
// (the template may have changed while berthd was down).
func NewPodCIDRs(stateFile, template, confDir string) (*PodCIDRs, error) {
	p := &PodCIDRs{stateFile: stateFile, template: template, confDir: confDir}
	b, err := os.ReadFile(stateFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err == nil {
		if err := json.Unmarshal(b, &p.cidrs); err != nil {
			return nil, fmt.Errorf("pod CIDR state %s: %w", stateFile, err)
		}
	}
	if len(p.cidrs) > 0 && template != "" {
		if err := p.render(p.cidrs); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Get returns the recorded pod CIDRs.
func (p *PodCIDRs) Get() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.cidrs...)
}

// Update records podCIDR ("10.244.1.0/24" or a comma-separated dual-stack pair) and renders the
// template with it. An empty podCIDR changes nothing (the kubelet sends it before the node has
// one); a malformed one is errdefs.ErrInvalidArgument.
func (p *PodCIDRs) Update(podCIDR string) error {
	if strings.TrimSpace(podCIDR) == "" {
		return nil
	}
	var cidrs []string
	for _, c := range strings.Split(podCIDR, ",") {
		c = strings.TrimSpace(c)
		if _, _, err := net.ParseCIDR(c); err != nil {
			return fmt.Errorf("runtime_config.network_config.pod_cidr: %q is not a CIDR: %w", c, errdefs.ErrInvalidArgument)
		}
		cidrs = append(cidrs, c)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.template != "" {
		if err := p.render(cidrs); err != nil {
			return err
		}
	}
	b, _ := json.Marshal(cidrs)
	if err := writeAtomic(p.stateFile, b); err != nil {
		return fmt.Errorf("record pod CIDRs: %w", err)
	}
	p.cidrs = cidrs
	return nil
}

// render writes the template, filled with cidrs, into the configuration directory.
func (p *PodCIDRs) render(cidrs []string) error {
	text, err := os.ReadFile(p.template)
	if err != nil {
		return fmt.Errorf("CNI config template: %w", err)
	}
	tmpl, err := template.New(filepath.Base(p.template)).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return fmt.Errorf("CNI config template %s: %w", p.template, err)
	}
	data := TemplateData{PodCIDR: cidrs[0], PodCIDRRanges: cidrs}
	for _, c := range cidrs {
		route := "0.0.0.0/0"
		if strings.Contains(c, ":") {
			route = "::/0"
		}
		data.Routes = append(data.Routes, route)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, data); err != nil {
		return fmt.Errorf("render CNI config template %s: %w", p.template, err)
	}
	if !json.Valid(out.Bytes()) {
		return fmt.Errorf("CNI config template %s does not render to JSON:\n%s", p.template, out.String())
	}
	if err := os.MkdirAll(p.confDir, 0o755); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(p.confDir, TemplateConfName), out.Bytes())
}

// writeAtomic replaces path with data, so that a reader never sees half a file.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
