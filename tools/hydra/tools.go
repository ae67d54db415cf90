//go:build tools

// Package tools pins Ory Hydra, which the Cloakroom tests build and run as an
// OpenID provider (see internal/oidctest/hydra).
package tools

import _ "github.com/ory/hydra/v2"
