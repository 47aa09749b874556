package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// These accessors let controllers handle the status bookkeeping of every kind in one way.

// GetConditions returns the Rollout's conditions.
func (r *Rollout) GetConditions() []metav1.Condition { return r.Status.Conditions }

// SetConditions sets the Rollout's conditions.
func (r *Rollout) SetConditions(c []metav1.Condition) { r.Status.Conditions = c }

// SetObservedGeneration records the generation acted on.
func (r *Rollout) SetObservedGeneration(g int64) { r.Status.ObservedGeneration = g }

// GetConditions returns the HealthGate's conditions.
func (g *HealthGate) GetConditions() []metav1.Condition { return g.Status.Conditions }

// SetConditions sets the HealthGate's conditions.
func (g *HealthGate) SetConditions(c []metav1.Condition) { g.Status.Conditions = c }

// SetObservedGeneration records the generation acted on.
func (g *HealthGate) SetObservedGeneration(gen int64) { g.Status.ObservedGeneration = gen }

// GetConditions returns the MeshPolicy's conditions.
func (p *MeshPolicy) GetConditions() []metav1.Condition { return p.Status.Conditions }

// SetConditions sets the MeshPolicy's conditions.
func (p *MeshPolicy) SetConditions(c []metav1.Condition) { p.Status.Conditions = c }

// SetObservedGeneration records the generation acted on.
func (p *MeshPolicy) SetObservedGeneration(g int64) { p.Status.ObservedGeneration = g }
