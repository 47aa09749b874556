// Package routerules is the one home of HTTPRoute rule editing in Sluice.
//
// spec.rules of an HTTPRoute is an atomic list: whoever writes it writes all of it. Two parts of
// Sluice put things into rules: a Rollout's router (backendRefs, weights, A/B rules, its mirror
// filter, the data-plane probe's rule) and the MeshPolicy controller (timeouts, retry, ExtensionRef filters). So every route
// has exactly one writer of its rules:
//
//   - a route a Rollout drives (its generated route, or the route its httpRouteRef names): the
//     Rollout's router. A MeshPolicy only publishes its settings on such a route, as an
//     annotation (see Edit), and the router composes every published Edit into each write;
//   - any other route: the MeshPolicy controller, which composes the same Edits the same way.
//
// Whoever writes, the rules come out the same, so a route can change hands (a Rollout created
// or deleted) without losing a policy's settings. A publication touches only metadata, and the
// router's writes are guarded by spec.rules alone (a JSON patch test, see WriteRules) or not at
// all (server-side apply of a generated route), so a policy's publication never makes a
// rollback's write conflict, and never waits for it.
//
// The probe rule (internal/probe) never gets a policy's settings: Compose carries it over as is.
//
// Rules are edited in the server's JSON: fields Sluice does not know (a newer CRD) survive.
package routerules
