package lint

import (
	"context"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	"github.com/sluice-mesh/sluice/config/crd/bases"
)

// crdFiles are config/crd/bases as generated.
var crdFiles = bases.CRDs

// schemaChecker validates one version of one kind as the API server does on create: unknown
// fields (pruning, which kubectl's strict field validation refuses), the schema's defaults,
// the OpenAPI schema, list-type uniqueness, the CEL rules, and the object's metadata.
type schemaChecker struct {
	structural *structuralschema.Structural
	openapi    apiservervalidation.SchemaCreateValidator
	cel        *cel.Validator
}

// schemas are the embedded CRDs' checkers by "group/version, Kind", built once.
var schemas = sync.OnceValues(func() (map[string]*schemaChecker, error) {
	entries, err := crdFiles.ReadDir(".")
	if err != nil {
		return nil, err
	}
	out := map[string]*schemaChecker{}
	for _, e := range entries {
		data, err := crdFiles.ReadFile(e.Name())
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			return nil, fmt.Errorf("embedded CRD %s: %w", e.Name(), err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			c, err := newSchemaChecker(v.Schema.OpenAPIV3Schema)
			if err != nil {
				return nil, fmt.Errorf("embedded CRD %s, version %s: %w", e.Name(), v.Name, err)
			}
			out[crd.Spec.Group+"/"+v.Name+", "+crd.Spec.Names.Kind] = c
		}
	}
	return out, nil
})

func newSchemaChecker(v1 *apiextensionsv1.JSONSchemaProps) (*schemaChecker, error) {
	internal := &apiextensions.JSONSchemaProps{}
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(internal)
	if err != nil {
		return nil, err
	}
	openapi, _, err := apiservervalidation.NewSchemaValidator(internal)
	if err != nil {
		return nil, err
	}
	return &schemaChecker{structural: s, openapi: openapi, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
}

// prune removes and returns the fields the schema does not know (obj is changed).
func (c *schemaChecker) prune(obj map[string]any) []string {
	opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
	return pruning.PruneWithOptions(obj, c.structural, true, opts)
}

// applyDefaults writes the schema's defaults (+kubebuilder:default) into obj.
func (c *schemaChecker) applyDefaults(obj map[string]any) {
	structuraldefaulting.Default(obj, c.structural)
}

// validate returns what the API server refuses obj for, field by field: by the schema, and
// by the CEL rules.
func (c *schemaChecker) validate(ctx context.Context, obj map[string]any) (schemaErrs, celErrs field.ErrorList) {
	var errs field.ErrorList
	if md, ok := obj["metadata"].(map[string]any); ok {
		meta := &metav1.ObjectMeta{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(md, meta); err != nil {
			errs = append(errs, field.Invalid(field.NewPath("metadata"), "", err.Error()))
		} else {
			errs = append(errs, metavalidation.ValidateObjectMeta(meta, true, metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"))...)
		}
	} else {
		errs = append(errs, field.Required(field.NewPath("metadata"), "every object needs metadata with a name"))
	}
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, c.openapi)...)
	errs = append(errs, listtype.ValidateListSetsAndMaps(nil, c.structural, obj)...)
	// As the API server (customResourceStrategy.Validate): no CEL rule runs on an object with
	// an error a rule may trip over (a missing field, a wrong type, a list too long).
	if blocking(errs) {
		return append(errs, field.Invalid(nil, nil, "the CEL rules were not checked: correct the errors above first")), nil
	}
	celErrs, _ = c.cel.Validate(ctx, nil, c.structural, obj, nil, celconfig.RuntimeCELCostBudget)
	return errs, celErrs
}

func blocking(errs field.ErrorList) bool {
	for _, e := range errs {
		switch e.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return true
		}
	}
	return false
}
