package gatewayapi

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
	"github.com/sluice-mesh/sluice/internal/testenv"
)

func TestCookieRegex(t *testing.T) {
	cases := []struct {
		name    string
		cookies []meshv1alpha1.CookieMatch
		match   []string
		noMatch []string
	}{
		{
			name:    "one cookie",
			cookies: []meshv1alpha1.CookieMatch{{Name: "beta", Value: "yes"}},
			match:   []string{"beta=yes", "a=1; beta=yes; c=2", "a=1;beta=yes"},
			noMatch: []string{"notbeta=yes", "beta=yess", "beta=no", ""},
		},
		{
			name:    "metacharacters are literal",
			cookies: []meshv1alpha1.CookieMatch{{Name: "a.b", Value: "x+y"}},
			match:   []string{"a.b=x+y", "z=1; a.b=x+y"},
			noMatch: []string{"aXb=x+y", "a.b=xxy", "a.b=xy"},
		},
		{
			name:    "two cookies in either order, anywhere",
			cookies: []meshv1alpha1.CookieMatch{{Name: "beta", Value: "yes"}, {Name: "team", Value: "qa"}},
			match:   []string{"beta=yes; team=qa", "team=qa; beta=yes", "a=1; team=qa; b=2; beta=yes; c=3"},
			noMatch: []string{"beta=yes", "team=qa", "beta=yes; xteam=qa", "beta=yes; team=qaa"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expr, err := cookieRegex(tc.cookies)
			if err != nil {
				t.Fatalf("cookieRegex: %v", err)
			}
			re := regexp.MustCompile(expr)
			for _, h := range tc.match {
				if !re.MatchString(h) {
					t.Errorf("%s does not match Cookie %q", expr, h)
				}
			}
			for _, h := range tc.noMatch {
				if re.MatchString(h) {
					t.Errorf("%s matches Cookie %q", expr, h)
				}
			}
		})
	}
}

func TestHTTPMatchErrors(t *testing.T) {
	long := strings.Repeat("v", 400)
	var many []meshv1alpha1.CookieMatch
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		many = append(many, meshv1alpha1.CookieMatch{Name: n, Value: long})
	}
	cases := []struct {
		name  string
		match meshv1alpha1.RouteMatch
		want  string
	}{
		{
			name:  "a header twice, in any case",
			match: meshv1alpha1.RouteMatch{Headers: []meshv1alpha1.ValueMatch{{Name: "X-A", Value: "1"}, {Name: "x-a", Value: "2"}}},
			want:  "matched twice",
		},
		{
			name: "a Cookie header and cookies",
			match: meshv1alpha1.RouteMatch{
				Headers: []meshv1alpha1.ValueMatch{{Name: "cookie", Value: "a=1"}},
				Cookies: []meshv1alpha1.CookieMatch{{Name: "b", Value: "2"}},
			},
			want: "both a Cookie header",
		},
		{
			name:  "a cookie twice",
			match: meshv1alpha1.RouteMatch{Cookies: []meshv1alpha1.CookieMatch{{Name: "b", Value: "1"}, {Name: "b", Value: "2"}}},
			want:  "matched twice",
		},
		{
			name:  "too many long cookies for one regex",
			match: meshv1alpha1.RouteMatch{Cookies: many},
			want:  "over the Gateway API limit",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := httpMatch(tc.match, rootPath())
			if err == nil {
				t.Fatalf("httpMatch succeeded, want an error containing %q", tc.want)
			}
			assertContains(t, "error", err.Error(), tc.want)
		})
	}
}

// The Rollout schema caps cookies (count, name and value length) so that any accepted match
// has a cookie regex within the limit: the worst case it admits must build.
func TestCookieRegexFitsTheSchemaLimits(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", "mesh.sluice.dev_rollouts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatal(err)
	}
	s := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, p := range []string{"spec", "strategy", "canary", "match", "cookies"} {
		if s.Items != nil {
			s = s.Items.Schema
		}
		next, ok := s.Properties[p]
		if !ok {
			t.Fatalf("the Rollout schema has no %s", p)
		}
		s = &next
	}
	if s.MaxItems == nil {
		t.Fatal("cookies has no maxItems")
	}
	item := s.Items.Schema
	nameMax, valueMax := item.Properties["name"].MaxLength, item.Properties["value"].MaxLength
	if nameMax == nil || valueMax == nil {
		t.Fatal("a cookie's name or value has no maxLength")
	}
	// Names of characters QuoteMeta escapes (2 bytes each), values of 4-byte runes.
	escaped := []string{".", "*", "+", "$", "^", "|"}
	for n := 1; n <= int(*s.MaxItems); n++ {
		var cookies []meshv1alpha1.CookieMatch
		for i := range n {
			cookies = append(cookies, meshv1alpha1.CookieMatch{
				Name:  strings.Repeat(escaped[i%len(escaped)], int(*nameMax)),
				Value: strings.Repeat("🙂", int(*valueMax)),
			})
		}
		re, err := cookieRegex(cookies)
		if err != nil {
			t.Fatalf("%d cookies at the schema's limits: %v", n, err)
		}
		t.Logf("%d cookies at the schema's limits: %d bytes", n, len(re))
	}
}
