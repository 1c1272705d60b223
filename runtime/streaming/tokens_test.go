package streaming

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestTokens(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	tk := newTokens()
	tk.clock = func() time.Time { return now }

	a, err := tk.issue("/exec/abc")
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 43 || strings.ContainsAny(a, "/+=") {
		t.Errorf("token %q: want 43 URL-safe characters (256 bits)", a)
	}
	b, _ := tk.issue("/attach/def")
	if a == b {
		t.Fatal("two tokens alike")
	}
	if p, ok := tk.redeem(a); !ok || p != "/exec/abc" {
		t.Errorf("redeem = %q, %v; want /exec/abc", p, ok)
	}
	if _, ok := tk.redeem(a); ok {
		t.Error("a token redeemed twice")
	}
	if _, ok := tk.redeem("not-a-token"); ok {
		t.Error("an unknown token redeemed")
	}
	now = now.Add(tokenTTL + time.Second)
	if _, ok := tk.redeem(b); ok {
		t.Error("an expired token redeemed")
	}

	for range maxInFlight {
		if _, err := tk.issue("/exec/x"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tk.issue("/exec/x"); !errors.Is(err, errTooManyStreams) {
		t.Errorf("token %d in flight: %v, want errTooManyStreams", maxInFlight+1, err)
	}
	now = now.Add(tokenTTL + time.Second) // the unused ones expire and make room
	if _, err := tk.issue("/exec/x"); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
}

// The server answers only berth's URLs, each once; the library's own URLs, whose tokens are
// short, are not served.
func TestServerServesOnlyItsOwnURLsOnce(t *testing.T) {
	s, err := New(Options{Address: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close()
	resp, err := s.GetExec(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"sh"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(resp.Url)
	if err != nil || u.Host != s.Address() || !strings.HasPrefix(u.Path, tokenPrefix) {
		t.Fatalf("exec URL %q", resp.Url)
	}
	get := func(path string) int {
		t.Helper()
		r, err := http.Post("http://"+s.Address()+path, "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	// The library's URL of the same request: a second GetExec to learn its form.
	lib, err := s.Server.GetExec(&runtimeapi.ExecRequest{ContainerId: "c1", Cmd: []string{"sh"}, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	lu, _ := url.Parse(lib.Url)
	if code := get(lu.Path); code != http.StatusNotFound {
		t.Errorf("the library's own URL %s: %d, want 404", lu.Path, code)
	}
	if code := get(u.Path); code == http.StatusNotFound {
		t.Errorf("berth's URL, first use: 404")
	}
	if code := get(u.Path); code != http.StatusNotFound {
		t.Errorf("berth's URL, second use: %d, want 404", code)
	}
	if code := get(tokenPrefix + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"); code != http.StatusNotFound {
		t.Errorf("a made-up token: %d, want 404", code)
	}
}
