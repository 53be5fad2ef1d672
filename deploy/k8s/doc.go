// Package k8s holds the Kubernetes manifests of the example game (a
// kustomize base and overlays) and the test that validates them: every
// manifest decodes strictly into the k8s.io/api types, every kustomization
// lists its files and renders, and every container's flags and XSERVER_
// variables are real flags of the binary it runs.
//
// It is a module of its own so that the framework's module does not
// depend on the Kubernetes API; make test runs its test.
package k8s
