package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ManagerUser is the user the tests' managers run as: it holds only the ClusterRole that
// `make manifests` generates (config/rbac/role.yaml), so a call the role does not grant fails
// the test that makes it.
const ManagerUser = "sluice-manager-under-test"

// Call is one kind of API request: verb, API group and resource (with its subresource).
type Call struct {
	Verb, Group, Resource string
}

func (c Call) String() string {
	g := c.Group
	if g == "" {
		g = "core"
	}
	return c.Verb + " " + g + "/" + c.Resource
}

// CallRecorder keeps every kind of request the managers made.
type CallRecorder struct {
	mu        sync.Mutex
	calls     map[Call]int
	forbidden map[Call]int
}

// Calls is the process's recorder: every config from ManagerConfig reports to it.
var Calls = &CallRecorder{}

func (r *CallRecorder) add(c Call, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls == nil {
		r.calls, r.forbidden = map[Call]int{}, map[Call]int{}
	}
	r.calls[c]++
	if status == http.StatusForbidden {
		r.forbidden[c]++
	}
}

// Forbidden lists the kinds of request the API server refused for lack of permission.
func (r *CallRecorder) Forbidden() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedCalls(r.forbidden)
}

// Seen reports whether a request of this kind was made. An informer's watch counts as its
// list too: against an API server with streaming lists the initial list is part of the watch,
// against one without it is a separate LIST, and the role must serve both.
func (r *CallRecorder) Seen(c Call) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c.Verb == "list" && r.calls[Call{Verb: "watch", Group: c.Group, Resource: c.Resource}] > 0 {
		return true
	}
	return r.calls[c] > 0
}

// All lists the kinds of request made, sorted.
func (r *CallRecorder) All() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return sortedCalls(r.calls)
}

func sortedCalls(m map[Call]int) []Call {
	out := make([]Call, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y Call) int { return strings.Compare(x.String(), y.String()) })
	return out
}

// recordingTransport reports each resource request to Calls.
type recordingTransport struct{ next http.RoundTripper }

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if c, ok := ParseCall(req.Method, req.URL.Path, req.URL.Query().Get("watch")); ok {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		if status == http.StatusForbidden && !deniedByRBAC(resp) {
			status = -1 // refused for another reason (a CRD being deleted), not for a missing grant
		}
		Calls.add(c, status)
		if c.Verb == "patch" && status == http.StatusCreated {
			// A server-side apply that creates the object is authorized as a create too.
			Calls.add(Call{Verb: "create", Group: c.Group, Resource: c.Resource}, status)
		}
	}
	return resp, err
}

// ParseCall turns a request into the RBAC verb and resource it is authorized as; discovery and
// other non-resource paths are not calls (every authenticated user may make them).
func ParseCall(method, path, watch string) (Call, bool) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 3 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return Call{}, false
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:] // namespaced: namespaces/{ns}/{resource}...
	}
	resource, named := parts[0], len(parts) >= 2
	if len(parts) >= 3 {
		resource += "/" + parts[2]
	}
	var verb string
	switch method {
	case http.MethodGet:
		switch {
		case named:
			verb = "get"
		case watch == "true" || watch == "1":
			verb = "watch"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		return Call{}, false
	}
	return Call{Verb: verb, Group: group, Resource: resource}, true
}

var managerUser struct {
	once sync.Once
	cfg  *rest.Config
	err  error
}

// ManagerConfig is a config for ManagerUser, bound to the generated ClusterRole, whose requests
// are recorded in Calls. Each call returns a copy (callers may wrap its transport further).
func (e *Env) ManagerConfig() (*rest.Config, error) {
	managerUser.once.Do(func() {
		managerUser.cfg, managerUser.err = e.bindManagerRole()
	})
	if managerUser.err != nil {
		return nil, managerUser.err
	}
	cfg := rest.CopyConfig(managerUser.cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return recordingTransport{next: rt} })
	return cfg, nil
}

func (e *Env) bindManagerRole() (*rest.Config, error) {
	role, err := GeneratedClusterRole()
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	role.Name = ManagerUser
	if err := e.Client.Create(ctx, role); err != nil {
		return nil, fmt.Errorf("creating the generated ClusterRole: %w", err)
	}
	binding := &rbacv1.ClusterRoleBinding{}
	binding.Name = role.Name
	binding.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name}
	binding.Subjects = []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: ManagerUser}}
	if err := e.Client.Create(ctx, binding); err != nil {
		return nil, fmt.Errorf("binding the generated ClusterRole: %w", err)
	}
	user, err := e.ControlPlane.AddUser(envtest.User{Name: ManagerUser}, e.Config)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// GeneratedClusterRole reads the manager's ClusterRole from config/rbac/role.yaml.
func GeneratedClusterRole() (*rbacv1.ClusterRole, error) {
	roles, err := generatedRoles()
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if r.Kind == "ClusterRole" {
			return &rbacv1.ClusterRole{TypeMeta: r.TypeMeta, ObjectMeta: metav1.ObjectMeta{Name: r.Name}, Rules: r.Rules}, nil
		}
	}
	return nil, fmt.Errorf("config/rbac/role.yaml: no ClusterRole")
}

// generatedRoles reads every Role and ClusterRole of config/rbac/role.yaml (as Roles).
func generatedRoles() ([]rbacv1.Role, error) {
	path := filepath.Join(RepoRoot(), "config", "rbac", "role.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []rbacv1.Role
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var role rbacv1.Role
		if err := dec.Decode(&role); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, role)
	}
}

// BindManagerRoles grants ManagerUser the generated namespaced Roles (the policy ConfigMaps'
// reader) in namespace, where the install puts them in its own namespace.
func (e *Env) BindManagerRoles(namespace string) error {
	roles, err := generatedRoles()
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, r := range roles {
		if r.Kind != "Role" {
			continue
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "sluice-" + r.Name, Namespace: namespace}, Rules: r.Rules}
		if err := e.Client.Create(ctx, role); err != nil {
			return err
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: namespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: ManagerUser}},
		}
		if err := e.Client.Create(ctx, binding); err != nil {
			return err
		}
	}
	return nil
}

// Grants lists every verb, group and resource a role's rules grant.
func Grants(rules []rbacv1.PolicyRule) []Call {
	var out []Call
	for _, r := range rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					out = append(out, Call{Verb: v, Group: g, Resource: res})
				}
			}
		}
	}
	return out
}

// RBACReport compares the generated ClusterRole with the calls recorded: what the API server
// refused, and what the role grants that no manager used (except those explained in unused,
// with the reason). Resources in one of shared are written by one generic code path: a verb
// used on one of them counts for all.
func RBACReport(unused map[Call]string, shared ...[]Call) (problems []string, err error) {
	role, err := GeneratedClusterRole()
	if err != nil {
		return nil, err
	}
	for _, c := range Calls.Forbidden() {
		problems = append(problems, fmt.Sprintf("refused: %s (the manager needs it; add a +kubebuilder:rbac marker)", c))
	}
	for _, g := range Grants(role.Rules) {
		if _, explained := unused[g]; explained || Calls.Seen(g) || seenInShared(g, shared) {
			continue
		}
		problems = append(problems, fmt.Sprintf("granted but never used: %s (drop it from the +kubebuilder:rbac markers, or test what needs it)", g))
	}
	slices.Sort(problems)
	return problems, nil
}

func seenInShared(g Call, shared [][]Call) bool {
	for _, set := range shared {
		member := false
		for _, c := range set {
			member = member || (c.Group == g.Group && c.Resource == g.Resource)
		}
		if !member {
			continue
		}
		for _, c := range set {
			if Calls.Seen(Call{Verb: g.Verb, Group: c.Group, Resource: c.Resource}) {
				return true
			}
		}
	}
	return false
}

// deniedByRBAC reads a 403's body (and puts it back): the authorizer says "cannot <verb>".
func deniedByRBAC(resp *http.Response) bool {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return err == nil && bytes.Contains(body, []byte(" cannot "))
}
