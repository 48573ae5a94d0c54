package profiling

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		addr string
		want string // "" when valid, else a part of the error
	}{
		{"", ""},
		{"127.0.0.1:6060", ""},
		{"127.0.0.2:6060", ""},
		{"[::1]:6060", ""},
		{"localhost:0", ""},
		{"LOCALHOST:6060", ""},
		{":6060", "loopback address"},
		{"0.0.0.0:6060", "loopback address"},
		{"[::]:6060", "loopback address"},
		{"10.0.0.1:6060", "loopback address"},
		{"example.com:6060", "loopback address"},
		{"6060", "host:port"},
		{"127.0.0.1:http", "host:port"},
		{"127.0.0.1:70000", "host:port"},
	}
	for _, c := range cases {
		t.Run(c.addr, func(t *testing.T) {
			err := (&Config{PprofAddr: c.addr}).Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}

func TestServesProfiles(t *testing.T) {
	s, err := Listen(Config{PprofAddr: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/mutex?debug=1", "/debug/pprof/goroutine?debug=1"} {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Fatalf("GET %s: %d, %d bytes", path, resp.StatusCode, len(body))
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if _, err := Listen(Config{PprofAddr: "0.0.0.0:0"}, nil); err == nil {
		t.Fatal("Listen accepted a non-loopback address")
	}
}
