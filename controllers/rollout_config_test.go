package controllers_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/controllers"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

// configTarget makes the target read a ConfigMap (envFrom) and a Secret (a volume).
func (c *cluster) configTarget(t testing.TB, name string) {
	t.Helper()
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name + "-config", Namespace: c.ns}, Data: map[string]string{"ERROR_RATE": "0"}})
	create(t, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-db", Namespace: c.ns}, Data: map[string][]byte{"password": []byte("s3cret-value")}})
	c.target(t, name)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := c.deployment(t, name)
		spec := &d.Spec.Template.Spec
		spec.Containers[0].EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: name + "-config"}}}}
		spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "db", MountPath: "/etc/db"}}
		spec.Volumes = []corev1.Volume{{Name: "db", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: name + "-db"}}}}
		return env.Client.Update(context.Background(), d)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) setConfig(t testing.TB, name, key, value string) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: name}, cm); err != nil {
			return err
		}
		cm.Data[key] = value
		return env.Client.Update(context.Background(), cm)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// slotConfig is the copy a slot's pods use for the source ConfigMap, and for the Secret.
func slotConfig(t testing.TB, c *cluster, slot string) (configMap, secret string) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: slot}, d); err != nil {
		return "", "" // not there (yet)
	}
	spec := d.Spec.Template.Spec
	if env := spec.Containers[0].EnvFrom; len(env) == 1 && env[0].ConfigMapRef != nil {
		configMap = env[0].ConfigMapRef.Name
	}
	if len(spec.Volumes) == 1 && spec.Volumes[0].Secret != nil {
		secret = spec.Volumes[0].Secret.SecretName
	}
	return configMap, secret
}

func copies(t testing.TB, c *cluster) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	var cms corev1.ConfigMapList
	var secs corev1.SecretList
	sel := client.MatchingLabels{"mesh.sluice.dev/config": "copy"}
	if err := env.Client.List(context.Background(), &cms, client.InNamespace(c.ns), sel); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(context.Background(), &secs, client.InNamespace(c.ns), sel); err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		out["ConfigMap/"+cm.Name] = true
	}
	for _, s := range secs.Items {
		out["Secret/"+s.Name] = true
	}
	return out
}

// With config tracking, a ConfigMap change is a release like an image change: the canary
// runs a copy of the new content, the stable slot keeps its copy; a failing gate rolls back
// and the stable pods never saw the change. Copies are immutable, named by content, hold no
// mark of the source's labels, are listed (names only) in status, and go when no slot uses
// them or the Rollout is deleted.
func TestConfigChangeIsReleasedAndRolledBack(t *testing.T) {
	c := newCluster(t, "config")
	g := &stubGates{}
	startManager(t, c.ns, g)
	c.configTarget(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.ConfigTracking = &meshv1alpha1.ConfigTracking{Enabled: true}
	create(t, ro)
	r := c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	cmCopy, secCopy := slotConfig(t, c, "checkout-a")
	if !strings.HasPrefix(cmCopy, "checkout-config-") || !strings.HasPrefix(secCopy, "checkout-db-") {
		t.Fatalf("slot a uses ConfigMap %q and Secret %q, want copies of checkout-config and checkout-db", cmCopy, secCopy)
	}
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: cmCopy}, cm); err != nil {
		t.Fatal(err)
	}
	if cm.Data["ERROR_RATE"] != "0" || !ptr.Deref(cm.Immutable, false) || cm.Annotations["mesh.sluice.dev/config-source"] != "checkout-config" {
		t.Errorf("copy %s: data %v immutable %v annotations %v", cmCopy, cm.Data, cm.Immutable, cm.Annotations)
	}
	sec := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: secCopy}, sec); err != nil {
		t.Fatal(err)
	}
	if string(sec.Data["password"]) != "s3cret-value" || !ptr.Deref(sec.Immutable, false) {
		t.Errorf("secret copy %s: immutable %v, data not carried over", secCopy, sec.Immutable)
	}
	wantStatus := []meshv1alpha1.ConfigCopy{{Kind: "ConfigMap", Name: "checkout-config", Copy: cmCopy}, {Kind: "Secret", Name: "checkout-db", Copy: secCopy}}
	if got := slotStatus(r, meshv1alpha1.SlotA); got == nil || !equalJSON(got.Config, wantStatus) {
		t.Errorf("status.slots[a] %+v, want config %+v", got, wantStatus)
	}
	noSecretIn(t, c, r)

	// A copy deleted by someone comes back (its source still holds that content): a stable
	// pod that restarts must find it.
	if err := env.Client.Delete(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	if err := pollFor(20*time.Second, func() bool {
		again := &corev1.ConfigMap{}
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: c.ns, Name: cmCopy}, again) == nil && again.UID != cm.UID
	}); err != nil {
		t.Errorf("deleted copy %s not made again", cmCopy)
	}

	// A change that breaks the app: released to the canary only, rolled back by the gate.
	g.set(func(r *meshv1alpha1.Rollout) meshv1alpha1.Verdict { return meshv1alpha1.VerdictFail })
	c.setConfig(t, "checkout-config", "ERROR_RATE", "0.5")
	c.waitRollout(t, "checkout", "a release of the new config", func(r *meshv1alpha1.Rollout) bool { return r.Status.CanaryRevision != "" })
	if err := pollFor(20*time.Second, func() bool { b, _ := slotConfig(t, c, "checkout-b"); return b != "" && b != cmCopy }); err != nil {
		t.Fatal("the canary slot never got a copy of the new content")
	}
	badCopy, _ := slotConfig(t, c, "checkout-b")
	r = c.waitRollout(t, "checkout", "rolled back by the gate", func(r *meshv1alpha1.Rollout) bool { return r.Status.Phase == meshv1alpha1.PhaseRolledBack })
	if a, _ := slotConfig(t, c, "checkout-a"); a != cmCopy {
		t.Errorf("the stable slot's config changed to %s during the release (want %s throughout)", a, cmCopy)
	}
	for _, s := range c.splits() {
		if s["checkout-a"] == 0 && s["checkout-b"] > 0 {
			t.Errorf("all traffic went to the canary: %v", s)
		}
	}
	if !copies(t, c)["ConfigMap/"+badCopy] {
		t.Errorf("the copy of the content under release (%s) is gone while the target still asks for it", badCopy)
	}
	noSecretIn(t, c, r)

	// Reverted in Git: the same content is the same copy, the stable revision: nothing to
	// release. The copy of the bad content goes once its slot is scaled down.
	g.set(nil)
	c.setConfig(t, "checkout-config", "ERROR_RATE", "0")
	c.waitRollout(t, "checkout", "Healthy again without a release", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.Phase == meshv1alpha1.PhaseHealthy && r.Status.CanaryRevision == "" && r.Status.StableSlot == meshv1alpha1.SlotA
	})
	if err := pollFor(20*time.Second, func() bool { return !copies(t, c)["ConfigMap/"+badCopy] }); err != nil {
		t.Errorf("unused copy %s not collected: copies %v", badCopy, copies(t, c))
	}
	if got := copies(t, c); !got["ConfigMap/"+cmCopy] || !got["Secret/"+secCopy] {
		t.Errorf("copies in use were deleted: %v", got)
	}

	// The Rollout goes: traffic is handed back to the target (which reads the sources), then
	// every copy goes.
	if err := env.Client.Delete(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := pollFor(30*time.Second, func() bool { return len(copies(t, c)) == 0 }); err != nil {
		t.Errorf("copies left after the Rollout was deleted: %v", copies(t, c))
	}
}

// A required ConfigMap that does not exist is the target's problem: its revision is not
// released, the stable slot keeps serving, status names the object; creating it releases.
func TestMissingConfigSourceHoldsTheRelease(t *testing.T) {
	c := newCluster(t, "config-missing")
	startManager(t, c.ns, &stubGates{})
	c.configTarget(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.ConfigTracking = &meshv1alpha1.ConfigTracking{Enabled: true}
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := c.deployment(t, "checkout")
		d.Spec.Template.Spec.Containers[0].EnvFrom = append(d.Spec.Template.Spec.Containers[0].EnvFrom,
			corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "feature-flags"}}})
		return env.Client.Update(context.Background(), d)
	})
	if err != nil {
		t.Fatal(err)
	}
	r := c.waitRollout(t, "checkout", "Stalled on the missing ConfigMap", func(r *meshv1alpha1.Rollout) bool {
		return condIs(r, meshv1alpha1.ConditionStalled, "TargetMisconfigured")
	})
	if msg := stalledMessage(r); !strings.Contains(msg, "ConfigMap/feature-flags") || r.Status.CanaryRevision != "" {
		t.Errorf("stalled %q, canary %q: want the missing ConfigMap named and no release", msg, r.Status.CanaryRevision)
	}
	create(t, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "feature-flags", Namespace: c.ns}, Data: map[string]string{"new-checkout": "on"}})
	c.waitRollout(t, "checkout", "released once it exists", func(r *meshv1alpha1.Rollout) bool {
		return r.Status.CanaryRevision != "" || r.Status.StableSlot == meshv1alpha1.SlotB
	})
}

func slotStatus(r *meshv1alpha1.Rollout, s meshv1alpha1.Slot) *meshv1alpha1.SlotStatus {
	for i := range r.Status.Slots {
		if r.Status.Slots[i].Slot == s {
			return &r.Status.Slots[i]
		}
	}
	return nil
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// noSecretIn checks that the Secret's value appears in no status and no event.
func noSecretIn(t testing.TB, c *cluster, r *meshv1alpha1.Rollout) {
	t.Helper()
	st, _ := json.Marshal(r.Status)
	if strings.Contains(string(st), "s3cret-value") {
		t.Error("the Secret's value is in the Rollout's status")
	}
	var evs corev1.EventList
	if err := env.Client.List(context.Background(), &evs, client.InNamespace(c.ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range evs.Items {
		if strings.Contains(e.Message, "s3cret-value") {
			t.Errorf("event %s carries the Secret's value", e.Name)
		}
	}
}

// --track-secrets=false: ConfigMaps are copied, Secrets stay referenced as they are (the
// manager then never lists or watches Secrets, so its role needs no such grant).
func TestConfigTrackingWithoutSecrets(t *testing.T) {
	c := newCluster(t, "config-nosecrets")
	mgr := newRolloutManagerWith(t, managerSetup{noSecrets: true}, func(ctrl.Manager) controllers.GateChecker { return &stubGates{} }, c.ns)
	stop := testenv.RunManager(mgr)
	t.Cleanup(func() { _ = stop() })
	c.configTarget(t, "checkout")
	ro := canaryRollout(c.ns, "checkout")
	ro.Spec.ConfigTracking = &meshv1alpha1.ConfigTracking{Enabled: true}
	create(t, ro)
	c.healthyOn(t, "checkout", meshv1alpha1.SlotA)
	cm, sec := slotConfig(t, c, "checkout-a")
	if !strings.HasPrefix(cm, "checkout-config-") || sec != "checkout-db" {
		t.Errorf("slot a uses ConfigMap %q and Secret %q: want a copy of the ConfigMap and the Secret itself", cm, sec)
	}
	for k := range copies(t, c) {
		if strings.HasPrefix(k, "Secret/") {
			t.Errorf("a Secret was copied: %s", k)
		}
	}
}
