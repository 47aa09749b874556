package controllers

import (
	"context"
	"encoding/json"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// readThrough reads obj from the cache, or, when the cache lacks it, from the API server: the
// manager caches only the Deployments and Services that carry Sluice's labels (CacheOptions),
// so a miss is not a proof of absence. found is false only when the API server says so.
func readThrough(ctx context.Context, cached client.Client, apiReader client.Reader, key client.ObjectKey, obj client.Object) (bool, error) {
	err := cached.Get(ctx, key, obj)
	if err == nil {
		return true, nil
	}
	if !apierrors.IsNotFound(err) {
		return false, err
	}
	switch err := apiReader.Get(ctx, key, obj); {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// labelPatch sets the label key to value, or removes it when value is empty: a merge patch
// (an update, not an apply, so that no apply of the same field manager takes it away).
func labelPatch(key, value string) client.Patch {
	var v any
	if value != "" {
		v = value
	}
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{key: v}}})
	return client.RawPatch("application/merge-patch+json", body)
}
