package limit

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fileServingWriter is a ResponseWriter with its own ReadFrom, as net/http's
// is; it records what each ReadFrom was handed.
type fileServingWriter struct {
	*httptest.ResponseRecorder
	sources []io.Reader
}

func (w *fileServingWriter) ReadFrom(src io.Reader) (int64, error) {
	w.sources = append(w.sources, src)
	return io.Copy(w.ResponseRecorder, src)
}

func TestSlowResponsesHandFilesToTheConnectionsReadFrom(t *testing.T) {
	rate := ResponseRate{Idle: time.Second, MinBytesPerSecond: 100 << 10}
	content := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes: several parts
	path := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	w := &fileServingWriter{ResponseRecorder: httptest.NewRecorder()}
	SlowResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		http.ServeContent(w, r, "", time.Time{}, f)
	}), rate).ServeHTTP(w, httptest.NewRequest("GET", "/blob", nil))

	if !bytes.Equal(w.Body.Bytes(), content) {
		t.Fatalf("served %d bytes, want the file's %d", w.Body.Len(), len(content))
	}
	if len(w.sources) < 2 {
		t.Fatalf("%d ReadFrom call(s): the file did not go out in parts of %d bytes", len(w.sources), rate.Part())
	}
	for i, src := range w.sources {
		// What sendfile needs: one *io.LimitedReader over the *os.File.
		lr, ok := src.(*io.LimitedReader)
		if !ok {
			t.Fatalf("part %d: ReadFrom got a %T, not an *io.LimitedReader", i, src)
		}
		if _, ok := lr.R.(*os.File); !ok {
			t.Fatalf("part %d: the limited reader reads a %T, not the *os.File: sendfile is lost", i, lr.R)
		}
	}
}

// deadlineRecorder records the write deadlines set through
// http.ResponseController and the sizes of the writes.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadlines []time.Time
	writes    []int
}

func (w *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	w.deadlines = append(w.deadlines, t)
	return nil
}

func (w *deadlineRecorder) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	return w.ResponseRecorder.Write(p)
}

func TestSlowResponsesWriteLargeBodiesInPartsEachWithItsDeadline(t *testing.T) {
	rate := ResponseRate{Idle: time.Second, MinBytesPerSecond: 100 << 10}
	body := make([]byte, 5*rate.Part()/2)
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	start := time.Now()
	SlowResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}), rate).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))

	if want := []int{int(rate.Part()), int(rate.Part()), int(rate.Part() / 2)}; len(w.writes) != 3 ||
		w.writes[0] != want[0] || w.writes[1] != want[1] || w.writes[2] != want[2] {
		t.Fatalf("writes of %v bytes, want %v", w.writes, want)
	}
	// One per part, one for what the server writes after the handler.
	if len(w.deadlines) != 4 {
		t.Fatalf("deadlines %v: want one per part and one at the end", w.deadlines)
	}
	for _, d := range w.deadlines {
		if d.Before(start.Add(rate.Idle)) || d.After(time.Now().Add(rate.Idle+time.Second)) {
			t.Errorf("deadline %v after the start: want about Idle (%v)", d.Sub(start), rate.Idle)
		}
	}
}

func TestResponsePartIsWhatTheMinimumRateTakesInIdle(t *testing.T) {
	tests := []struct {
		rate ResponseRate
		part int64
		time time.Duration // to take one part
	}{
		{ResponseRate{}, 64 << 10, 64 * time.Second}, // defaults: 1 KiB/s, 1 minute
		{ResponseRate{Idle: 10 * time.Second, MinBytesPerSecond: 100 << 10}, 1000 << 10, 10 * time.Second},
		{ResponseRate{Idle: time.Minute, MinBytesPerSecond: 1 << 20}, 4 << 20, time.Minute},
		{ResponseRate{Idle: 5 * time.Second, MinBytesPerSecond: -1}, 64 << 10, 5 * time.Second},
	}
	for _, tt := range tests {
		r := tt.rate.withDefaults()
		if got := r.Part(); got != tt.part {
			t.Errorf("%+v: part %d, want %d", tt.rate, got, tt.part)
		}
		if got := r.partTime(r.Part()); got != tt.time {
			t.Errorf("%+v: a part may take %v, want %v", tt.rate, got, tt.time)
		}
	}
}

func TestSlowResponsesLeaveAServersWriteTimeoutAlone(t *testing.T) {
	w := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
	srv := &http.Server{WriteTimeout: 30 * time.Second}
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), http.ServerContextKey, srv))
	SlowResponses(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(make([]byte, 200<<10))
	}), ResponseRate{}).ServeHTTP(w, req)
	if len(w.deadlines) != 0 {
		t.Fatalf("deadlines %v set under a server WriteTimeout, which must stay the bound", w.deadlines)
	}
}
