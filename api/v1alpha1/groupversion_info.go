// Package v1alpha1 holds the Sluice API types of group mesh.sluice.dev: Rollout, HealthGate
// and MeshPolicy. Types only: it imports apimachinery-level packages and nothing of Sluice's.
//
// +kubebuilder:object:generate=true
// +groupName=mesh.sluice.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "mesh.sluice.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the kinds of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&Rollout{}, &RolloutList{},
		&HealthGate{}, &HealthGateList{},
		&MeshPolicy{}, &MeshPolicyList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
