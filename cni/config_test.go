package cni

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const bridgeList = `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}`

func TestConfigNetwork(t *testing.T) {
	tests := []struct {
		desc     string
		files    map[string]string
		plugins  []string
		wantName string
		wantErr  string
	}{
		{desc: "empty dir", wantErr: "no network config found"},
		{
			desc:     "first file by name wins",
			files:    map[string]string{"20-b.conflist": strings.Replace(bridgeList, "%s", "b", 1), "10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			plugins:  []string{"bridge", "portmap"},
			wantName: "a",
		},
		{
			desc:     "single-plugin .conf is wrapped in a list",
			files:    map[string]string{"10-one.conf": `{"cniVersion":"0.4.0","name":"one","type":"bridge"}`},
			plugins:  []string{"bridge"},
			wantName: "one",
		},
		{
			desc:    "missing plugin binary",
			files:   map[string]string{"10-a.conflist": strings.Replace(bridgeList, "%s", "a", 1)},
			plugins: []string{"bridge"},
			wantErr: `plugin "portmap" not found`,
		},
		{
			desc:     "broken file skipped for the next",
			files:    map[string]string{"10-bad.conflist": `{"name":`, "20-good.conflist": strings.Replace(bridgeList, "%s", "good", 1)},
			plugins:  []string{"bridge", "portmap"},
			wantName: "good",
		},
		{
			desc:    "only broken files",
			files:   map[string]string{"10-bad.conflist": `{"name":`},
			wantErr: "10-bad.conflist",
		},
		{
			desc:    "other extensions ignored",
			files:   map[string]string{"README.md": "x"},
			wantErr: "no network config found",
		},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			confDir, binDir := t.TempDir(), t.TempDir()
			for name, content := range test.files {
				if err := os.WriteFile(filepath.Join(confDir, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, p := range test.plugins {
				if err := os.WriteFile(filepath.Join(binDir, p), []byte("#!/bin/sh\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			list, _, err := NewConfig(confDir, []string{binDir}).Network()
			if test.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), test.wantErr) {
					t.Fatalf("Network() error = %v, want one containing %q", err, test.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Network(): %v", err)
			}
			if list.Name != test.wantName {
				t.Errorf("Network() = %q, want %q", list.Name, test.wantName)
			}
		})
	}
}

func TestConfigReloadsWhenDirChanges(t *testing.T) {
	confDir, binDir := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(binDir, "bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	c := NewConfig(confDir, []string{binDir})
	if ready, reason, msg := c.Ready(); ready || reason == "" || msg == "" {
		t.Fatalf("Ready() on empty dir = %v, %q, %q; want false with reason and message", ready, reason, msg)
	}
	if err := os.WriteFile(filepath.Join(confDir, "10-x.conflist"), []byte(`{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if ready, reason, msg := c.Ready(); !ready {
		t.Fatalf("Ready() after adding a network = false, %q, %q", reason, msg)
	}
	if err := os.Remove(filepath.Join(confDir, "10-x.conflist")); err != nil {
		t.Fatal(err)
	}
	if ready, _, _ := c.Ready(); ready {
		t.Fatal("Ready() after removing the network = true")
	}
}
