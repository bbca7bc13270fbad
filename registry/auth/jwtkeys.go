package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// minJWTKeyLen is the shortest HS256 key accepted.
const minJWTKeyLen = 32

// KeyID names a JWT key in the "kid" header of the JWTs it signs: the hex
// of the first 8 bytes of the key's SHA-256. It identifies the key without
// revealing it, and every replica given the same key computes the same id.
func KeyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:8])
}

// JWTKeys are the keys of a JWTIssuer: one signs (and verifies), the others
// only verify, for the JWTs a previous key signed during a rotation. They
// may change while the issuer runs (Set); JWTs name their key by KeyID.
type JWTKeys struct {
	set atomic.Pointer[keySet]
}

type keySet struct {
	sign   []byte
	signID string
	byID   map[string][]byte
	// all verifies JWTs without kid (issued before JWTs carried one).
	all jwt.VerificationKeySet
}

// NewJWTKeys returns the key set: sign signs, every key verifies.
func NewJWTKeys(sign []byte, verify ...[]byte) (*JWTKeys, error) {
	k := &JWTKeys{}
	if err := k.Set(sign, verify...); err != nil {
		return nil, err
	}
	return k, nil
}

// Set replaces the keys at once: JWTs of a key no longer listed stop
// verifying, even those verified before.
func (k *JWTKeys) Set(sign []byte, verify ...[]byte) error {
	s := &keySet{sign: bytes.Clone(sign), signID: KeyID(sign), byID: map[string][]byte{}}
	for i, key := range append([][]byte{sign}, verify...) {
		if len(key) < minJWTKeyLen {
			if i == 0 {
				return fmt.Errorf("jwt key: %d bytes, want at least %d", len(key), minJWTKeyLen)
			}
			return fmt.Errorf("jwt verify key %d: %d bytes, want at least %d", i, len(key), minJWTKeyLen)
		}
		id := KeyID(key)
		if _, dup := s.byID[id]; dup {
			continue
		}
		s.byID[id] = bytes.Clone(key)
		s.all.Keys = append(s.all.Keys, s.byID[id])
	}
	k.set.Store(s)
	return nil
}

func (k *JWTKeys) current() *keySet { return k.set.Load() }

// keyFunc picks the key of a JWT by its kid. A JWT without kid is checked
// against every key; a kid that names no key is refused, never a reason to
// try them all.
func (s *keySet) keyFunc(t *jwt.Token) (any, error) {
	kid, has := t.Header["kid"]
	if !has {
		return s.all, nil
	}
	id, _ := kid.(string)
	key, ok := s.byID[id]
	if !ok {
		return nil, fmt.Errorf("unknown key id %v", kid)
	}
	return key, nil
}

// ParseJWTKeyFile reads a key file: one key per line, the first signs and
// verifies, the next ones only verify (previous keys, kept while the JWTs
// they signed live). Whitespace around a line and blank lines are ignored;
// every key is at least 32 bytes. A one-line file is the single key of
// before rotations.
func ParseJWTKeyFile(raw []byte) (sign []byte, verify [][]byte, err error) {
	for i, line := range bytes.Split(raw, []byte("\n")) {
		key := bytes.TrimSpace(line)
		if len(key) == 0 {
			continue
		}
		if len(key) < minJWTKeyLen {
			return nil, nil, fmt.Errorf("line %d: %d bytes, want at least %d", i+1, len(key), minJWTKeyLen)
		}
		if sign == nil {
			sign = key
		} else {
			verify = append(verify, key)
		}
	}
	if sign == nil {
		return nil, nil, errors.New("no key in the file")
	}
	return sign, verify, nil
}

// JWTKeyFile keeps JWTKeys in step with a key file (ParseJWTKeyFile's
// format), so that a rotation reaches a running server: a Kubernetes Secret
// mounted as a volume changes under the pods without a restart. A version
// of the file that does not parse keeps the keys in force; Err says why.
type JWTKeyFile struct {
	path string
	keys *JWTKeys
	log  *slog.Logger
	raw  []byte

	mu    sync.Mutex
	err   error
	watch *fileWatch
}

// JWTKeyFileOptions configure OpenJWTKeyFile.
type JWTKeyFileOptions struct {
	// Logger receives reload messages; nil discards them.
	Logger *slog.Logger
	// Watch follows the file until Close.
	Watch bool
	// PollInterval is how often a watched file is read again besides the
	// change notifications, for filesystems where those are silent
	// (default 10 s).
	PollInterval time.Duration
}

// OpenJWTKeyFile reads the key file at path; the first read must succeed.
func OpenJWTKeyFile(path string, o JWTKeyFileOptions) (*JWTKeyFile, error) {
	f := &JWTKeyFile{path: path, log: o.Logger}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	raw, sign, verify, err := f.read()
	if err != nil {
		return nil, err
	}
	if f.keys, err = NewJWTKeys(sign, verify...); err != nil {
		return nil, fmt.Errorf("JWT key %s: %w", path, err)
	}
	f.raw = raw
	if o.Watch {
		if o.PollInterval <= 0 {
			o.PollInterval = 10 * time.Second
		}
		w, err := watchFile(path, "JWT key", o.PollInterval, f.log, func() { f.Reload() })
		if err != nil {
			return nil, err
		}
		f.watch = w
	}
	return f, nil
}

// Keys returns the keys, kept current while the file is watched.
func (f *JWTKeyFile) Keys() *JWTKeys { return f.keys }

// Err is the error of the last read, nil when it succeeded.
func (f *JWTKeyFile) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *JWTKeyFile) read() (raw, sign []byte, verify [][]byte, err error) {
	raw, err = os.ReadFile(f.path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWT key: %w", err)
	}
	sign, verify, err = ParseJWTKeyFile(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("JWT key %s: %w", f.path, err)
	}
	return raw, sign, verify, nil
}

// Reload reads the file again; on error the keys in force stay.
func (f *JWTKeyFile) Reload() error {
	raw, sign, verify, err := f.read()
	if err == nil && !bytes.Equal(raw, f.raw) {
		if err = f.keys.Set(sign, verify...); err == nil {
			f.raw = raw
			f.log.Info("JWT keys loaded", "path", f.path, "signing_kid", KeyID(sign), "verify_only", len(verify))
		}
	}
	f.mu.Lock()
	before := f.err
	f.err = err
	f.mu.Unlock()
	switch {
	case err != nil && (before == nil || before.Error() != err.Error()):
		f.log.Error("JWT key file refused; keeping the keys in force", "path", f.path, "error", err)
	case err == nil && before != nil:
		f.log.Info("JWT key file readable again", "path", f.path)
	}
	return err
}

// Close stops watching the file.
func (f *JWTKeyFile) Close() error {
	f.watch.Stop()
	f.watch = nil
	return nil
}
