// Package deploycheck validates the deploy kit in deploy/ without a cluster
// or a container runtime: it renders the Helm chart as Helm does and decodes
// every manifest strictly into its Kubernetes API type, reads the Dockerfile
// and the systemd unit, and its tests prove each against Cloakroom itself
// (the rendered configuration passes `cloakroom check`).
//
// It is a module of its own so that the main module gets no Kubernetes or
// Helm dependency. Run it from its directory:
//
//	cd tools/deploycheck && go test ./...
package deploycheck
