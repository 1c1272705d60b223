package cgroup

import (
	"context"
	"errors"
	"fmt"
	"sync"

	systemddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// systemdUnits stops units through systemd's D-Bus API, connected on first use: to systemd's
// private socket (root, no D-Bus daemon needed), else to the system bus.
type systemdUnits struct {
	mu   sync.Mutex
	conn *systemddbus.Conn
}

func (u *systemdUnits) connection(ctx context.Context) (*systemddbus.Conn, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.conn != nil && u.conn.Connected() {
		return u.conn, nil
	}
	conn, err := systemddbus.NewSystemdConnectionContext(ctx)
	if err != nil {
		var busErr error
		if conn, busErr = systemddbus.NewWithContext(ctx); busErr != nil {
			return nil, fmt.Errorf("connect to systemd: %w", errors.Join(err, busErr))
		}
	}
	u.conn = conn
	return conn, nil
}

func (u *systemdUnits) StopUnit(ctx context.Context, name string) error {
	conn, err := u.connection(ctx)
	if err != nil {
		return err
	}
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, name, "replace", done); err != nil {
		if noSuchUnit(err) {
			return nil
		}
		return err
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("systemd stop job of %s: %s", name, result)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	// A unit whose processes were killed stays "failed" until reset; runc does the same.
	if err := conn.ResetFailedUnitContext(ctx, name); err != nil && !noSuchUnit(err) {
		return fmt.Errorf("reset %s: %w", name, err)
	}
	return nil
}

func noSuchUnit(err error) bool {
	name := ""
	var e godbus.Error
	var pe *godbus.Error
	switch {
	case errors.As(err, &e): // replies carry the error as a value
		name = e.Name
	case errors.As(err, &pe):
		name = pe.Name
	}
	return name == "org.freedesktop.systemd1.NoSuchUnit" || name == "org.freedesktop.DBus.Error.UnknownObject"
}
