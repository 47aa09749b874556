package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	meshv1alpha1 "github.com/sluice-mesh/sluice/api/v1alpha1"
)

// Level is how well a provider expresses a field.
type Level string

// The levels of support.
const (
	// Full: the field means on this data plane what the API says.
	Full Level = "full"
	// Partial: expressed, with a difference the note states. The policy is still Ready.
	Partial Level = "partial"
	// Unsupported: not expressed; a policy setting it is not Ready, and is rejected at
	// admission when its provider is explicit.
	Unsupported Level = "unsupported"
)

// Support is one cell of the matrix.
type Support struct {
	Level Level
	// Note says what differs (Partial), why it can't be done (Unsupported) or what the
	// field becomes (Full).
	Note string
}

// Matrix maps a field path (see Fields) to its support.
type Matrix map[string]Support

// addressing are the spec fields that say what the policy applies to and how, not what it
// asks of the data plane; they have no matrix rows.
var addressing = map[string]bool{"targetRefs": true, "provider": true}

// Fields lists the path of every policy field of MeshPolicySpec, in declaration order: each
// leaf, and each list of objects itself (authorization.rules: deny by default, allow what is
// listed). List indexes are left out (authorization.rules.from.namespace).
func Fields() []string {
	var out []string
	walkFields(reflect.TypeOf(meshv1alpha1.MeshPolicySpec{}), "", &out)
	return out
}

func walkFields(t reflect.Type, prefix string, out *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" || (prefix == "" && addressing[name]) {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case ft.Kind() == reflect.Slice && structElem(ft) != nil:
			*out = append(*out, path)
			walkFields(structElem(ft), path, out)
		case ft.Kind() == reflect.Struct && !isScalarStruct(ft):
			walkFields(ft, path, out)
		default:
			*out = append(*out, path)
		}
	}
}

func structElem(t reflect.Type) reflect.Type {
	e := t.Elem()
	for e.Kind() == reflect.Pointer {
		e = e.Elem()
	}
	if e.Kind() == reflect.Struct {
		return e
	}
	return nil
}

// isScalarStruct: structs serialized as one value (metav1.Duration).
func isScalarStruct(t reflect.Type) bool {
	return t.PkgPath() != reflect.TypeOf(meshv1alpha1.MeshPolicySpec{}).PkgPath()
}

func jsonName(f reflect.StructField) string {
	tag := f.Tag.Get("json")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" {
		return ""
	}
	return name
}

// SetFields lists the paths of the policy fields the spec sets (same paths as Fields).
func SetFields(spec *meshv1alpha1.MeshPolicySpec) []string {
	set := map[string]bool{}
	walkSet(reflect.ValueOf(*spec), "", set)
	out := make([]string, 0, len(set))
	for _, f := range Fields() {
		if set[f] {
			out = append(out, f)
		}
	}
	return out
}

func walkSet(v reflect.Value, prefix string, set map[string]bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name := jsonName(f)
		if name == "" || (prefix == "" && addressing[name]) {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		for fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				fv = reflect.Value{}
				break
			}
			fv = fv.Elem()
		}
		if !fv.IsValid() {
			continue
		}
		switch {
		case fv.Kind() == reflect.Slice && structElem(fv.Type()) != nil:
			set[path] = true // the list itself, even empty, once its parent is set
			for j := 0; j < fv.Len(); j++ {
				e := fv.Index(j)
				for e.Kind() == reflect.Pointer {
					e = e.Elem()
				}
				walkSet(e, path, set)
			}
		case fv.Kind() == reflect.Struct && !isScalarStruct(fv.Type()):
			walkSet(fv, path, set)
		case fv.IsZero() && fv.Kind() != reflect.Bool:
			// unset scalar
		default:
			set[path] = true
		}
	}
}

// Check lists the fields the spec sets that the provider's matrix marks Unsupported, with the
// matrix note as the reason, and the Partial ones (expressed with a difference). A field with
// no matrix row counts as unsupported: the matrix is the contract.
func Check(m Matrix, spec *meshv1alpha1.MeshPolicySpec) (unsupported, partial []meshv1alpha1.UnsupportedField) {
	for _, f := range SetFields(spec) {
		s, ok := m[f]
		switch {
		case !ok:
			unsupported = append(unsupported, meshv1alpha1.UnsupportedField{Field: f, Reason: "not in this provider's support matrix"})
		case s.Level == Unsupported:
			unsupported = append(unsupported, meshv1alpha1.UnsupportedField{Field: f, Reason: s.Note})
		case s.Level == Partial:
			partial = append(partial, meshv1alpha1.UnsupportedField{Field: f, Reason: s.Note})
		}
	}
	return unsupported, partial
}

// Merge adds extra to fields, one entry per field (the first reason wins), sorted by field.
func Merge(fields []meshv1alpha1.UnsupportedField, extra ...meshv1alpha1.UnsupportedField) []meshv1alpha1.UnsupportedField {
	seen := map[string]bool{}
	var out []meshv1alpha1.UnsupportedField
	for _, f := range append(append([]meshv1alpha1.UnsupportedField{}, fields...), extra...) {
		if seen[f.Field] {
			continue
		}
		seen[f.Field] = true
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out
}

// Validate reports a matrix row that is missing or malformed, for the providers' tests.
func (m Matrix) Validate() error {
	var missing []string
	for _, f := range Fields() {
		s, ok := m[f]
		if !ok {
			missing = append(missing, f)
			continue
		}
		switch s.Level {
		case Full, Partial, Unsupported:
		default:
			return fmt.Errorf("field %s: level %q is not full, partial or unsupported", f, s.Level)
		}
		if s.Level != Full && strings.TrimSpace(s.Note) == "" {
			return fmt.Errorf("field %s: a %s row needs a note saying what differs or why", f, s.Level)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no matrix row for %s", strings.Join(missing, ", "))
	}
	known := map[string]bool{}
	for _, f := range Fields() {
		known[f] = true
	}
	for f := range m {
		if !known[f] {
			return fmt.Errorf("matrix row %s is not a MeshPolicy field", f)
		}
	}
	return nil
}
