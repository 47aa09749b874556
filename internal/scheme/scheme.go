// Package scheme assembles the kinds the manager and the tests read and write.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// AddToScheme adds the Kubernetes built-in kinds, Gateway API v1 and Sluice's.
func AddToScheme(s *runtime.Scheme) error {
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return err
	}
	if err := gatewayv1.Install(s); err != nil {
		return err
	}
	return meshv1alpha1.AddToScheme(s)
}

// New returns a scheme with every kind Sluice uses.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
