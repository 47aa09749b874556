package consul

import (
	"reflect"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// TestAnyCaller checks the merging the golden files show only in passing.
func TestAnyCaller(t *testing.T) {
	get := permission{exact: "/a", methods: []string{"GET"}}
	public := permission{prefix: "/public/"}
	tests := []struct {
		name  string
		rules []meshv1alpha1.AuthorizationRule
		want  *source
	}{
		{
			name: "no rules denies everyone",
			want: &source{},
		},
		{
			name: "rules with an empty from are merged, each permission once",
			rules: []meshv1alpha1.AuthorizationRule{
				{To: []meshv1alpha1.AuthorizationDestination{{Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/a"}}}},
				{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}, {Methods: []meshv1alpha1.HTTPMethod{"GET"}, Paths: []string{"/a"}}}},
			},
			want: &source{perms: []permission{get, public}},
		},
		{
			name: "allowing everything wins over permissions",
			rules: []meshv1alpha1.AuthorizationRule{
				{To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}}},
				{},
			},
			want: &source{all: true, perms: []permission{public}},
		},
		{
			name: "rules naming sources allow nobody",
			rules: []meshv1alpha1.AuthorizationRule{
				{From: []meshv1alpha1.AuthorizationSource{sa("a/web")}},
				{From: []meshv1alpha1.AuthorizationSource{nsSource("a")}, To: []meshv1alpha1.AuthorizationDestination{{Paths: []string{"/public/*"}}}},
			},
			want: &source{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := anyCaller(&meshv1alpha1.Authorization{Rules: tt.rules})
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
	if anyCaller(nil) != nil {
		t.Error("without authorization: want no source, so no ServiceIntentions")
	}
}
