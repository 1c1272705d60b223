package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// contrib/config.toml, the file `make install` puts in /etc/berth, shows every key with its
// default: uncommented, it is Default() exactly, and no key is missing from it.
func TestContribConfigShowsTheDefaults(t *testing.T) {
	data, err := os.ReadFile("../contrib/config.toml")
	if err != nil {
		t.Fatal(err)
	}
	key := regexp.MustCompile(`^# ([a-z-]+) = `)
	var out []string
	seen := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "# [") {
			break // the tables: examples, not defaults
		}
		if m := key.FindStringSubmatch(line); m != nil {
			seen[m[1]] = true
			out = append(out, strings.TrimPrefix(line, "# "))
		}
	}
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	var cfg Config
	if err := LoadFile(&cfg, path, false); err != nil {
		t.Fatal(err)
	}
	def := Default()
	def.RuntimeHandlers = nil
	if len(cfg.DefaultUlimits) == 0 && len(def.DefaultUlimits) == 0 {
		cfg.DefaultUlimits, def.DefaultUlimits = nil, nil // "[]" in the file, nil by default
	}
	if len(cfg.CheckpointArchiveDirs) == 0 && len(def.CheckpointArchiveDirs) == 0 {
		cfg.CheckpointArchiveDirs, def.CheckpointArchiveDirs = nil, nil
	}
	if !reflect.DeepEqual(cfg, def) {
		t.Errorf("contrib/config.toml uncommented:\n%+v\nDefault():\n%+v", cfg, def)
	}
	ty := reflect.TypeOf(Config{})
	for i := range ty.NumField() {
		tag, _, _ := strings.Cut(ty.Field(i).Tag.Get("toml"), ",")
		if tag == "" {
			continue
		}
		if ty.Field(i).Type.Kind() == reflect.Map {
			if !strings.Contains(string(data), "\n# ["+tag+"]\n") {
				t.Errorf("contrib/config.toml does not show the table %s", tag)
			}
		} else if !seen[tag] {
			t.Errorf("contrib/config.toml does not show %s", tag)
		}
	}
}
