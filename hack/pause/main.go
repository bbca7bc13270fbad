// Command pause sleeps until it is told to stop. The local cluster uses it
// as its pod sandbox image (no registry.k8s.io/pause can be pulled here), and
// the e2e suite as the workload it pushes into unireg and runs from there.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
