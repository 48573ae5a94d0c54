package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ourway/auth/internal/config"
)

// listener, Limits and sample are a small settings tree of the shape the
// service's sections have.
type listener struct {
	Host    string        `yaml:"host" env:"T_HOST"`
	Port    int           `yaml:"port" env:"T_PORT"`
	Timeout time.Duration `yaml:"timeout"`
	Mode    string        `yaml:"mode" env:"T_MODE,lower"`
}

func (l *listener) Validate() error {
	var errs []error
	if l.Port < 1 {
		errs = append(errs, config.Invalid("Port", fmt.Sprint(l.Port), "must be positive"))
	}
	if l.Timeout <= 0 {
		errs = append(errs, config.Invalid("Timeout", l.Timeout.String(), "must be positive"))
	}
	if l.Mode != "fast" && l.Mode != "slow" {
		errs = append(errs, config.Invalid("Mode", l.Mode, "must be fast or slow when {Host} is set"))
	}
	return errors.Join(errs...)
}

type Limits struct {
	Burst int `yaml:"burst" env:"T_BURST"`
}

var limitsValidated int

func (l *Limits) Validate() error {
	limitsValidated++
	if l.Burst > 10 {
		return config.Invalid("Burst", fmt.Sprint(l.Burst), "must be at most 10")
	}
	return nil
}

type creds struct {
	Token config.Secret   `yaml:"-" env:"T_TOKEN"`
	Old   []config.Secret `yaml:"-" env:"T_OLD"`
	Flag  bool            `yaml:"-" env:"T_FLAG"`
}

type ops struct {
	Limits `yaml:",inline"`
	Name   string `yaml:"name" env:"T_NAME"`
}

type sample struct {
	Server  listener `yaml:"server"`
	Ops     ops      `yaml:"ops"`
	Creds   creds    `yaml:"-"`
	Derived []string `yaml:"-"`
}

func (s *sample) Validate() error {
	if s.Ops.Name == s.Server.Host {
		return config.Invalid("Ops.Name", s.Ops.Name, "must differ from {Server.Host}")
	}
	return nil
}

const defaults = `
server:
  host: localhost
  port: 80
  timeout: 5s
  mode: fast
ops:
  burst: 3
  name: ops
`

func getenv(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func yamlFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// settingErrors returns the *config.Error values joined in err.
func settingErrors(err error) []*config.Error {
	var out []*config.Error
	var walk func(error)
	walk = func(err error) {
		var ce *config.Error
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
		} else if errors.As(err, &ce) {
			out = append(out, ce)
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

func TestLoadOrder(t *testing.T) {
	file := yamlFile(t, "server:\n  port: 81\nops:\n  burst: 4\n")
	var s sample
	got, err := config.Load(&s, []byte(defaults), getenv("AUTH_CONFIG", file, "T_PORT", " 82 ", "T_MODE", "SLOW",
		"T_TOKEN", "tok", "T_OLD", " a, ,b ", "T_FLAG", "yes"))
	if err != nil {
		t.Fatal(err)
	}
	if got != file {
		t.Errorf("file = %q, want %q", got, file)
	}
	want := sample{
		Server: listener{Host: "localhost", Port: 82, Timeout: 5 * time.Second, Mode: "slow"},
		Ops:    ops{Limits: Limits{Burst: 4}, Name: "ops"},
		Creds:  creds{Token: "tok", Old: []config.Secret{"a", "b"}, Flag: true},
	}
	if fmt.Sprintf("%#v", s) != fmt.Sprintf("%#v", want) || s.Creds.Token.Reveal() != "tok" || s.Creds.Old[1].Reveal() != "b" {
		t.Errorf("loaded %+v, want %+v", s, want)
	}
}

func TestLoadNamesKeysAndVariables(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string // "" for none
		env  []string
		want []string // the errors' texts, in order, with FILE for the file's path
		set  []string // their Setting fields
	}{
		{
			name: "unknown key",
			file: "server:\n  prot: 4000\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): server.prot: unknown key (line 2). Did you mean port? Known keys of server: host, port, timeout, mode`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "unknown section",
			file: "sever:\n  port: 4000\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): sever: unknown key (line 1). Did you mean server? Known sections: server, ops`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "secret in the file",
			file: "creds:\n  token: x\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): creds: unknown key (line 1). Known sections: server, ops`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "bad value in the file: its key path, and the variable",
			file: "server:\n  port: http\n",
			want: []string{`invalid configuration: FILE: server.port="http" (T_PORT): must be a whole number (line 2)`},
			set:  []string{"T_PORT"},
		},
		{
			name: "value refused by Validate, from the file",
			file: "server:\n  port: -1\n",
			want: []string{`invalid configuration: FILE: server.port="-1" (T_PORT): must be positive`},
			set:  []string{"T_PORT"},
		},
		{
			name: "value refused by Validate, from the environment over the file",
			file: "server:\n  port: -1\n",
			env:  []string{"T_PORT", "-2"},
			want: []string{`invalid configuration: T_PORT="-2": must be positive`},
			set:  []string{"T_PORT"},
		},
		{
			name: "bad value in the environment",
			env:  []string{"T_PORT", "http"},
			want: []string{`invalid configuration: T_PORT="http": must be a whole number`},
			set:  []string{"T_PORT"},
		},
		{
			name: "a setting without a variable is named by its key",
			file: "server:\n  timeout: 0s\n",
			want: []string{`invalid configuration: FILE: server.timeout="0s": must be positive`},
			set:  []string{"server.timeout"},
		},
		{
			name: "every problem, in order; a field named in a reason by its variable",
			file: "server:\n  colour: blue\n  mode: medium\n",
			env:  []string{"T_BURST", "11", "T_FLAG", "maybe", "T_NAME", "localhost"},
			want: []string{
				`invalid configuration: FILE (AUTH_CONFIG): server.colour: unknown key (line 2). Known keys of server: host, port, timeout, mode`,
				`invalid configuration: T_FLAG="maybe": must be true or false`,
				`invalid configuration: FILE: server.mode="medium" (T_MODE): must be fast or slow when T_HOST is set`,
				`invalid configuration: T_BURST="11": must be at most 10`,
				`invalid configuration: T_NAME="localhost": must differ from T_HOST`,
			},
			set: []string{"AUTH_CONFIG", "T_FLAG", "T_MODE", "T_BURST", "T_NAME"},
		},
		{
			name: "not YAML",
			file: "server: [\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): not valid YAML: line 1: did not find expected node content`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "a section that is not a mapping",
			file: "server: 4000\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): server: must be a mapping of keys (host, port, timeout, mode), not a single value (line 1)`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "a list where a value belongs",
			file: "server:\n  port: [1, 2]\n",
			want: []string{`invalid configuration: FILE: server.port (T_PORT): must be a single value, not a list (line 2)`},
			set:  []string{"T_PORT"},
		},
		{
			name: "a mapping where a value belongs",
			file: "ops:\n  burst: {a: 1}\n",
			want: []string{`invalid configuration: FILE: ops.burst (T_BURST): must be a single value, not a mapping (line 2)`},
			set:  []string{"T_BURST"},
		},
		{
			name: "a typo with letters swapped",
			file: "ops:\n  nmae: x\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): ops.nmae: unknown key (line 2). Did you mean name? Known keys of ops: burst, name`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "the file not a mapping",
			file: "- server\n",
			want: []string{`invalid configuration: FILE (AUTH_CONFIG): must be a mapping of sections (server, ops), not a list (line 1)`},
			set:  []string{"AUTH_CONFIG"},
		},
		{
			name: "a wrong type: a duration",
			file: "server:\n  timeout: 5\n",
			want: []string{`invalid configuration: FILE: server.timeout="5": must be a duration such as 30s or 10m (line 2)`},
			set:  []string{"server.timeout"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := tc.env
			file := ""
			if tc.file != "" {
				file = yamlFile(t, tc.file)
				env = append([]string{"AUTH_CONFIG", file}, env...)
			}
			limitsValidated = 0
			var s sample
			_, err := config.Load(&s, []byte(defaults), getenv(env...))
			errs := settingErrors(err)
			if len(errs) != len(tc.set) {
				t.Fatalf("Load: %v; want %d errors", err, len(tc.set))
			}
			for i, e := range errs {
				if e.Setting != tc.set[i] {
					t.Errorf("error %d names %s, want %s (%v)", i, e.Setting, tc.set[i], e)
				}
				if tc.want != nil {
					if want := strings.ReplaceAll(tc.want[i], "FILE", file); e.Error() != want {
						t.Errorf("error %d = %s\nwant        %s", i, e, want)
					}
				}
			}
			if limitsValidated > 1 {
				t.Errorf("an embedded section was validated %d times, want once", limitsValidated)
			}
		})
	}
}

func TestVariables(t *testing.T) {
	got := fmt.Sprint(config.Variables(sample{}))
	want := "[{AUTH_CONFIG } {T_HOST server.host} {T_PORT server.port} {T_MODE server.mode} {T_BURST ops.burst} {T_NAME ops.name} {T_TOKEN } {T_OLD } {T_FLAG }]"
	if got != want {
		t.Errorf("Variables = %s\nwant        %s", got, want)
	}
}

// Validate reports a section's problems by variable without reading
// anything.
func TestValidate(t *testing.T) {
	s := sample{Server: listener{Host: "h", Port: 1, Timeout: time.Second, Mode: "fast"}, Ops: ops{Name: "h"}}
	err := config.Validate(&s)
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Setting != "T_NAME" || ce.Error() != `invalid configuration: T_NAME="h": must differ from T_HOST` {
		t.Fatalf("Validate = %v, want T_NAME must differ from T_HOST", err)
	}
	s.Ops.Name = "o"
	if err := config.Validate(&s); err != nil {
		t.Errorf("Validate of good settings = %v", err)
	}
}
