package benchsuite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server started by the suite: auth-server or the ceiling.
type process struct {
	name string
	cmd  *exec.Cmd
	base string // http://127.0.0.1:PORT
	log  string // the file its stdout and stderr go to
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startProcess runs bin with args and env (PortPlaceholder in env and args is
// replaced by a free port), its output going to logPath, and waits until
// it answers GET /ping with 200.
func startProcess(ctx context.Context, name, bin string, args, env []string, logPath string) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ps := strconv.Itoa(port)
	fill := func(list []string) []string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = strings.ReplaceAll(s, PortPlaceholder, ps)
		}
		return out
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, fill(args)...)
	cmd.Env = fill(env)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, base: "http://127.0.0.1:" + ps, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := p.waitReady(ctx, 2*time.Minute); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

// waitReady polls GET /ping until it answers 200, the process exits or
// the time is up.
func (p *process) waitReady(ctx context.Context, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := client.Get(p.base + "/ping")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer /ping within %v (last error %v)\n%s", p.name, limit, err, p.tail())
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before answering /ping (%v)\n%s", p.name, p.err, p.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// tail is the end of the process's log, for error messages.
func (p *process) tail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop sends SIGTERM and waits for the exit (killing the process after
// 30 s); an exit other than a clean one is an error.
func (p *process) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited before it was stopped: %v\n%s", p.name, p.err, p.tail())
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %v\n%s", p.name, p.err, p.tail())
		}
		return nil
	case <-time.After(30 * time.Second):
		p.kill()
		return fmt.Errorf("%s did not exit within 30s of SIGTERM", p.name)
	}
}

// kill ends the process at once.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// rss is the process's resident memory (VmRSS of /proc/PID/status).
func (p *process) rss() (int64, error) { return p.status("VmRSS:") }

// status reads a memory line of /proc/PID/status, in bytes: "VmRSS:" the
// resident memory, "VmHWM:" its peak.
func (p *process) status(field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStatusKB(b, field)
}

// parseVmRSS reads the VmRSS line ("VmRSS:    12345 kB") of a status file.
func parseVmRSS(status []byte) (int64, error) { return parseStatusKB(status, "VmRSS:") }

// parseStatusKB reads the line of field ("VmHWM:    12345 kB") of a
// status file, in bytes.
func parseStatusKB(status []byte, field string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 3 && f[0] == field && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no " + strings.TrimSuffix(field, ":") + " line")
}

// PortPlaceholder, in the arguments or environment of a process the suite
// starts, is replaced by the free port the process is to listen on.
const PortPlaceholder = "{port}"
