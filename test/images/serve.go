package images

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Serve builds the catalog (the test binary in tmp, agnhost's images when agnhost is not "")
// and serves it from a new registry on addr ("" picks a free loopback port). moduleDir is the
// root of the berth module.
func Serve(moduleDir, tmp, agnhost, addr string) (*Registry, map[string]v1.Image, error) {
	return ServeSources(moduleDir, tmp, Sources{Agnhost: agnhost}, addr)
}

// ServeSources is Serve with the catalog's sources given; Busybox and TestBin are found and
// built when empty.
func ServeSources(moduleDir, tmp string, src Sources, addr string) (*Registry, map[string]v1.Image, error) {
	var err error
	if src.Busybox == "" {
		if src.Busybox, err = BusyboxPath(); err != nil {
			return nil, nil, err
		}
	}
	if src.TestBin == "" {
		if src.TestBin, err = BuildTestBin(moduleDir, tmp); err != nil {
			return nil, nil, err
		}
	}
	catalog, err := Catalog(src)
	if err != nil {
		return nil, nil, err
	}
	reg, err := StartRegistry(addr, nil)
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Push(context.Background(), catalog); err != nil {
		reg.Close()
		return nil, nil, err
	}
	return reg, catalog, nil
}

// ModuleRoot finds the root of the berth module from the working directory up.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for ; dir != "/"; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && slices.Contains(strings.Split(string(b), "\n"), "module github.com/berth-runtime/berth") {
			return dir, nil
		}
	}
	return "", errors.New("not inside the berth module")
}
