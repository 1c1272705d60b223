// Package cni gives pods their network: it loads the CNI network configuration berth uses and
// (in later work) creates, pins and removes network namespaces and runs libcni ADD/CHECK/DEL.
package cni

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
)

// confExtensions are the file names libcni-based runtimes read from the configuration directory.
var confExtensions = []string{".conflist", ".conf", ".json"}

// ErrNoNetwork reports that the configuration directory holds no usable network.
var ErrNoNetwork = errors.New("no network config found")

// Config loads the network berth uses: the first configuration file (by name) in ConfDir whose
// plugins are all installed in BinDirs. It reloads the file when the directory changes, so an
// operator (or a CNI daemonset) can install the network after berthd started.
type Config struct {
	confDir string
	binDirs []string

	mu        sync.Mutex
	signature string
	list      *libcni.NetworkConfigList
	file      string
	err       error
}

// NewConfig returns a loader for the network configuration in confDir with plugins in binDirs.
func NewConfig(confDir string, binDirs []string) *Config {
	return &Config{confDir: confDir, binDirs: binDirs}
}

// Network returns the loaded network and the file it came from, or an error saying why there is
// none. It is safe for concurrent use and cheap when nothing changed: it re-reads the directory's
// entries and their modification times, and reparses only when they differ from last time.
func (c *Config) Network() (*libcni.NetworkConfigList, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sig, files, err := c.scan()
	if err != nil {
		return nil, "", err
	}
	if sig != c.signature || c.signature == "" {
		c.list, c.file, c.err = c.load(files)
		c.signature = sig
	}
	return c.list, c.file, c.err
}

// scan lists the configuration files in order and a signature of their names, sizes and times.
func (c *Config) scan() (string, []string, error) {
	files, err := libcni.ConfFiles(c.confDir, confExtensions)
	if err != nil {
		return "", nil, fmt.Errorf("read CNI config dir %s: %w", c.confDir, err)
	}
	var sig strings.Builder
	sig.WriteString("|")
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			continue
		}
		fmt.Fprintf(&sig, "%s:%d:%d|", f, fi.Size(), fi.ModTime().UnixNano())
	}
	// Plugins installed after the config also change readiness.
	for _, d := range c.binDirs {
		if fi, err := os.Stat(d); err == nil {
			fmt.Fprintf(&sig, "%s:%d|", d, fi.ModTime().UnixNano())
		}
	}
	return sig.String(), files, nil
}

func (c *Config) load(files []string) (*libcni.NetworkConfigList, string, error) {
	if len(files) == 0 {
		return nil, "", fmt.Errorf("%w in %s", ErrNoNetwork, c.confDir)
	}
	var problems []string
	for _, f := range files {
		list, err := loadFile(f)
		if err == nil {
			err = c.checkPlugins(list)
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		return list, f, nil
	}
	return nil, "", fmt.Errorf("%w in %s: %s", ErrNoNetwork, c.confDir, strings.Join(problems, "; "))
}

func loadFile(path string) (*libcni.NetworkConfigList, error) {
	if strings.HasSuffix(path, ".conflist") {
		return libcni.ConfListFromFile(path)
	}
	conf, err := libcni.ConfFromFile(path)
	if err != nil {
		return nil, err
	}
	if conf.Network.Type == "" {
		return nil, errors.New("plugin type missing")
	}
	return libcni.ConfListFromConf(conf)
}

// checkPlugins makes sure every plugin the network chains is installed.
func (c *Config) checkPlugins(list *libcni.NetworkConfigList) error {
	if len(list.Plugins) == 0 {
		return errors.New("no plugins")
	}
	for _, p := range list.Plugins {
		if p.Network.Type == "" {
			return errors.New("a plugin has no type")
		}
		if _, err := invoke.FindInPath(p.Network.Type, c.binDirs); err != nil {
			return fmt.Errorf("plugin %q not found in %s", p.Network.Type, strings.Join(c.binDirs, ":"))
		}
	}
	return nil
}

// Ready reports whether a usable network is configured, with a reason and message when not, as
// CRI's NetworkReady condition wants them.
func (c *Config) Ready() (ready bool, reason, message string) {
	if _, _, err := c.Network(); err != nil {
		return false, "NetworkPluginNotReady", err.Error()
	}
	return true, "", ""
}
