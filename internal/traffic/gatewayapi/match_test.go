package gatewayapi

import (
	"regexp"
	"strings"
	"testing"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
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
