package linkerd

import (
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/policy"
)

// clients is a set of allowed callers: anyone, or meshed workloads of service accounts and
// namespaces.
type clients struct {
	any             bool
	serviceAccounts map[string]bool // "<namespace>/<name>"
	namespaces      map[string]bool
}

// add adds a rule's sources; an empty from means any caller.
func (c *clients) add(r *meshv1alpha1.AuthorizationRule) {
	if len(r.From) == 0 {
		c.any = true
		return
	}
	if c.serviceAccounts == nil {
		c.serviceAccounts, c.namespaces = map[string]bool{}, map[string]bool{}
	}
	for _, f := range r.From {
		if f.ServiceAccount != "" {
			c.serviceAccounts[f.ServiceAccount] = true
		} else {
			c.namespaces[f.Namespace] = true
		}
	}
}

func (c clients) none() bool { return !c.any && len(c.serviceAccounts) == 0 && len(c.namespaces) == 0 }

// key identifies the set: equal sets share one authentication object.
func (c clients) key() string {
	if c.any {
		return "*"
	}
	return strings.Join(sortedKeys(c.namespaces), ",") + "|" + strings.Join(sortedKeys(c.serviceAccounts), ",")
}

// identityRefs lists namespaces, then service accounts, each sorted.
func (c clients) identityRefs() []any {
	var refs []any
	for _, ns := range sortedKeys(c.namespaces) {
		refs = append(refs, map[string]any{"kind": "Namespace", "name": ns})
	}
	for _, sa := range sortedKeys(c.serviceAccounts) {
		ns, name, _ := strings.Cut(sa, "/")
		refs = append(refs, map[string]any{"kind": "ServiceAccount", "name": name, "namespace": ns})
	}
	return refs
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// authentications hands out the authentication object for a set of clients, one per distinct
// set, in order of first use.
type authentications struct {
	policyName, ns string
	// strict: mtls Strict, where "any caller" means any meshed caller.
	strict  bool
	refs    map[string]map[string]any
	objects []*unstructured.Unstructured
	named   int // MeshTLSAuthentications of named callers so far
}

// ref is the requiredAuthenticationRefs entry for c. Any caller is a MeshTLSAuthentication of
// every identity under mtls Strict, else a NetworkAuthentication of every address (meshed or
// not); named callers are a MeshTLSAuthentication of their service accounts and namespaces.
func (a *authentications) ref(c clients) map[string]any {
	key := c.key()
	if r, ok := a.refs[key]; ok {
		return r
	}
	if a.refs == nil {
		a.refs = map[string]map[string]any{}
	}
	var obj *unstructured.Unstructured
	switch {
	case c.any && a.strict:
		obj = newObject(meshTLSAuthnGVK, a.ns, policy.ObjectName(a.policyName, "any-meshed-client"),
			map[string]any{"identities": []any{"*"}})
	case c.any:
		obj = newObject(networkAuthnGVK, a.ns, policy.ObjectName(a.policyName, "any-client"),
			map[string]any{"networks": []any{map[string]any{"cidr": "0.0.0.0/0"}, map[string]any{"cidr": "::/0"}}})
	default:
		a.named++
		obj = newObject(meshTLSAuthnGVK, a.ns, policy.ObjectName(a.policyName, "clients", strconv.Itoa(a.named)),
			map[string]any{"identityRefs": c.identityRefs()})
	}
	a.objects = append(a.objects, obj)
	r := map[string]any{"group": policyGroup, "kind": obj.GetKind(), "name": obj.GetName()}
	a.refs[key] = r
	return r
}
