package consul

import (
	"reflect"
	"strings"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// TestIntentionSources checks the merging the golden files show only in passing.
func TestIntentionSources(t *testing.T) {
	get := permission{exact: "/a", methods: []string{"GET"}}
	public := permission{prefix: "/public/"}
	tests := []struct {
		name  string
		rules []meshv1alpha1.AuthorizationRule
		want  []source
	}{
		{
			name: "no rules denies everyone",
			want: []source{{name: wildcard}},
		},
		{
			name: "a source in two rules gets both, once each",
			rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("a/web")}, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/a"}}}},
				{From: []meshv1alpha1.AuthorizationSource{sa("b/web")}, To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}, {Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/a"}}}},
			},
			want: []source{{name: "web", perms: []permission{get, public}}, {name: wildcard}},
		},
		{
			name: "what anyone may do is added to named sources",
			rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("a/web")}, To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/a"}}}},
				{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}}},
			},
			want: []source{{name: "web", perms: []permission{get, public}}, {name: wildcard, perms: []permission{public}}},
		},
		{
			name: "allowing everything wins over permissions",
			rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("a/web")}, To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}}},
				{From: []meshv1alpha1.AuthorizationSource{sa("a/web")}},
			},
			want: []source{{name: "web", all: true, perms: []permission{public}}, {name: wildcard}},
		},
		{
			name: "a rule of namespaces only allows nobody",
			rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{nsSource("a")}},
			},
			want: []source{{name: wildcard}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := intentionSources(&meshv1alpha1.Authorization{Rules: tt.rules})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestIntentionSourcesBadServiceAccount(t *testing.T) {
	_, err := intentionSources(&meshv1alpha1.Authorization{Rules: []meshv1alpha1.AuthorizationRule{{From: []meshv1alpha1.AuthorizationSource{sa("web")}}}})
	if err == nil || !strings.Contains(err.Error(), "spec.authorization.rules[0].from[0].serviceAccount") {
		t.Errorf("err = %v, want one naming the field", err)
	}
}
