// Package routecheck is Causeway's answer to Envoy's router_check_tool: it
// runs a file of test cases (caller, service, method, path, headers ->
// expected backends with weights, and expected allow or deny) against a
// compiled snapshot and reports failures and coverage.
//
// It decides nothing itself: every answer comes from spec.Table's RouteHTTP,
// RouteL4 and Authorize, the functions the proxy calls per request, so the
// tool and the data plane cannot disagree.
//
// Enters: a *spec.Snapshot and the YAML of a cases file. Leaves: a Report.
// No goroutines.
package routecheck
