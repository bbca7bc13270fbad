package auth

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// fileWatch calls reload whenever a file may have changed, until Stop.
// It follows the file's directory rather than the file: editors rename a
// new file into place and the kubelet updates a Secret volume by swapping
// its ..data symlink, neither of which a watch on the file itself sees. A
// poll covers filesystems where notifications are silent.
type fileWatch struct {
	stop chan struct{}
	done chan struct{}
}

// watchFile starts a fileWatch; what names the file in its log lines.
func watchFile(path, what string, poll time.Duration, log *slog.Logger, reload func()) (*fileWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	if err := w.Add(filepath.Dir(path)); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch %s: %w", what, err)
	}
	fw := &fileWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(fw.done)
		defer w.Close()
		tick := time.NewTicker(poll)
		defer tick.Stop()
		for {
			select {
			case <-fw.stop:
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				reload()
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn(what+" watch", "error", err)
			case <-tick.C:
				reload()
			}
		}
	}()
	return fw, nil
}

// Stop ends the watch and waits for its goroutine; a nil watch is a no-op.
func (fw *fileWatch) Stop() {
	if fw == nil {
		return
	}
	close(fw.stop)
	<-fw.done
}
