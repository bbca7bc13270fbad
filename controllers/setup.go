// Package controllers holds the unireg operator's controllers: one per
// kind, each with one job.
package controllers

import (
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
)

// Options configure the controllers.
type Options struct {
	// DefaultImage runs Registries that do not name one.
	DefaultImage string
	// Now is the clock of expiry decisions; nil means time.Now (tests
	// inject their own).
	Now func() time.Time
}

// Setup registers every controller with the manager, in the order their
// field indexes need.
func Setup(mgr ctrl.Manager, o Options) error {
	if err := (&RegistryReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorderFor("registry-controller"),
		DefaultImage: o.DefaultImage, Now: o.Now,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&RegistryTokenReconciler{
		Client: mgr.GetClient(), Scheme: mgr.GetScheme(), Recorder: mgr.GetEventRecorderFor("registrytoken-controller"), Now: o.Now,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&RegistryScopeReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorderFor("registryscope-controller")}).SetupWithManager(mgr)
}
