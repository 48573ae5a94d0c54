package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// StartTimeout bounds how long Start waits for the server to listen and to
// answer GET /ping.
const StartTimeout = 30 * time.Second

// LogBuffer collects a process's output; it is safe for concurrent use.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is one auth-server started by a test as users start it: the
// binary, `serve`, and settings in its environment.
type Process struct {
	// Base is the server's address: http://127.0.0.1:PORT.
	Base string
	// Log holds the server's stderr, whole.
	Log *LogBuffer

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has exited
	err     error         // Wait's result, valid after done
	once    sync.Once     // Stop and Kill end the process once
	stopErr error
}

// Start runs `bin serve` with env, which must ask for a JSON log
// (AUTH_LOG_FORMAT=json) and may ask for a random port (SERVER_PORT=0): the
// address comes from the "auth-server listening" log line. It returns once
// GET /ping answers 200 through hc (nil: a client with a 5 s timeout). On
// failure the process is ended and the error holds its stderr.
func Start(bin string, env []string, hc *http.Client) (*Process, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout = io.Discard
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &Process{Log: &LogBuffer{}, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addrc := make(chan string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		found := false
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = p.Log.Write(append(append([]byte(nil), line...), '\n'))
			if found {
				continue
			}
			var rec struct {
				Msg  string `json:"msg"`
				Addr string `json:"addr"`
			}
			if json.Unmarshal(line, &rec) == nil && rec.Msg == "auth-server listening" {
				found = true
				addrc <- rec.Addr
			}
		}
		_, _ = io.Copy(p.Log, pipe)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read everything first
		p.err = cmd.Wait()
		close(p.done)
	}()
	fail := func(format string, args ...any) (*Process, error) {
		p.Kill()
		return nil, fmt.Errorf(format+"\nstderr:\n%s", append(args, p.Log.String())...)
	}
	var addr string
	select {
	case addr = <-addrc:
	case <-p.done:
		return nil, fmt.Errorf("exited before listening (%v)\nstderr:\n%s", p.err, p.Log.String())
	case <-time.After(StartTimeout):
		return fail("no \"auth-server listening\" log line within %v", StartTimeout)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fail("listening addr %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		host = "127.0.0.1" // a wildcard listener answers on loopback too
	}
	p.Base = "http://" + net.JoinHostPort(host, port)
	deadline := time.Now().Add(StartTimeout)
	for {
		resp, err := hc.Get(p.Base + "/ping")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			return fail("GET /ping did not answer 200 within %v (last error %v)", StartTimeout, err)
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("exited while waiting for /ping (%v)\nstderr:\n%s", p.err, p.Log.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits up to timeout for the process to exit; it
// kills the process after that. The error says what went wrong: the
// process had already exited, exited uncleanly, or did not exit in time.
// Only the first call of Stop or Kill acts; later Stop calls return the
// first one's error.
func (p *Process) Stop(timeout time.Duration) error {
	p.once.Do(func() {
		select {
		case <-p.done:
			p.stopErr = fmt.Errorf("exited before it was stopped: %v", p.err)
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			p.stopErr = fmt.Errorf("SIGTERM: %w", err)
			return
		}
		select {
		case <-p.done:
			if p.err != nil {
				p.stopErr = fmt.Errorf("did not exit cleanly after SIGTERM: %v", p.err)
			}
		case <-time.After(timeout):
			p.kill()
			p.stopErr = fmt.Errorf("did not exit within %v of SIGTERM", timeout)
		}
	})
	return p.stopErr
}

// Kill ends the process at once (SIGKILL), as a crash would, and waits for
// it. Only the first call of Stop or Kill acts.
func (p *Process) Kill() {
	p.once.Do(p.kill)
}

func (p *Process) kill() {
	_ = p.cmd.Process.Kill() // an error: it has exited already
	<-p.done
}
