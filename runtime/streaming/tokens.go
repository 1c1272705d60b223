package streaming

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"sync"
	"time"
)

// The streaming library's own tokens are 8 base64 characters (48 bits), valid for a minute, a
// thousand at a time: guessable by whoever reaches the port (cri-dockerd's issue #106 was that
// port open to the network). berth hands out its own in their place: 256 random bits, single
// use, valid for tokenTTL, each bound to the one library URL (and so the one request) it
// stands for. The library's URLs are not served at all.
const (
	tokenBytes  = 32
	tokenTTL    = 30 * time.Second
	maxInFlight = 1000
	// tokenPrefix is the path of berth's URLs: /t/<token>.
	tokenPrefix = "/t/"
)

// errTooManyStreams says maxInFlight URLs are handed out and unused.
var errTooManyStreams = errors.New("too many streaming requests in flight")

type grant struct {
	path    string // the library's URL path the token stands for
	expires time.Time
}

// tokens are the URLs handed out and not yet used.
type tokens struct {
	mu    sync.Mutex
	by    map[string]grant
	clock func() time.Time
}

func newTokens() *tokens { return &tokens{by: map[string]grant{}, clock: time.Now} }

// issue returns a new token standing for path.
func (t *tokens) issue(path string) (string, error) {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock()
	for k, g := range t.by {
		if now.After(g.expires) {
			delete(t.by, k)
		}
	}
	if len(t.by) >= maxInFlight {
		return "", errTooManyStreams
	}
	t.by[token] = grant{path: path, expires: now.Add(tokenTTL)}
	return token, nil
}

// redeem returns the path token stands for and forgets it; false for a token that is unknown,
// used or expired.
func (t *tokens) redeem(token string) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.by[token]
	if !ok {
		return "", false
	}
	delete(t.by, token)
	if t.clock().After(g.expires) {
		return "", false
	}
	return g.path, true
}
