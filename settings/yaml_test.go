package settings_test

import (
	"path/filepath"
	"strings"
	"testing"
)

// Errors of a configuration file name the file and the key path, and say
// what is wrong in words: an unknown key with the known ones, a value of
// the wrong type with its line.
func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       string // the error text after the file's path
	}{
		{"typo in a key", "server: {prot: 1}\n",
			" (AUTH_CONFIG): server.prot: unknown key (line 1). Did you mean port? Known keys of server: host, port, allow_cors,"},
		{"typo in a section", "databse:\n  type: sqlite\n",
			" (AUTH_CONFIG): databse: unknown key (line 1). Did you mean database? Known sections: server, database, policy,"},
		{"a word for a number", "server:\n  port: abc\n",
			`: server.port="abc" (SERVER_PORT): must be a whole number (line 2)`},
		{"a word for a boolean", "server:\n  allow_cors: sometimes\n",
			`: server.allow_cors="sometimes" (ALLOW_CORS): must be true or false (line 2)`},
		{"a number for a duration", "server:\n  read_timeout: 10\n",
			`: server.read_timeout="10": must be a duration such as 30s or 10m (line 2)`},
		{"a list for a value", "rate_limit:\n  default: [1, 2]\n",
			": rate_limit.default (RATE_LIMIT_DEFAULT): must be a single value, not a list (line 2)"},
		{"a value for a section", "log: debug\n",
			" (AUTH_CONFIG): log: must be a mapping of keys (level, format), not a single value (line 1)"},
		{"not YAML", "server: [\n", " (AUTH_CONFIG): not valid YAML: line 1: did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, "config.yaml", tc.yaml)
			_, err := load(t, "AUTH_CONFIG", file)
			if err == nil {
				t.Fatal("loaded")
			}
			if want := "invalid configuration: " + file + tc.want; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error:\n %s\nwant it to start with\n %s", err, want)
			}
			if filepath.Base(file) != "config.yaml" {
				t.Fatalf("file %s", file)
			}
		})
	}
}
