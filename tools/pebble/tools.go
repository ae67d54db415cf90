//go:build tools

// Package tools pins Pebble, Let's Encrypt's ACME test server, and its
// challenge test server, which the Cloakroom tests build and run to obtain
// certificates automatically (see internal/acmetest).
package tools

import (
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble"
	_ "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv"
)
