// Package auth holds the defaults that are built into the auth-server binary:
// the Casbin model and the configuration file. The service itself lives in
// the sub-packages (policy, api, audit, workflow) and cmd/auth-server.
package auth

import _ "embed"

// DefaultModel is the text of model.conf as shipped with the source tree.
//
//go:embed model.conf
var DefaultModel string

// DefaultConfig is the text of config.yaml as shipped with the source tree.
//
//go:embed config.yaml
var DefaultConfig []byte
