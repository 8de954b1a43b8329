package faults

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a server process the suite starts, kills and starts again, with
// its output appended to one log file. Each start runs in a process group
// of its own, so that a kill reaches what it forked too.
type proc struct {
	name string
	args []string // args[0] is the program
	env  []string // the whole environment
	log  string   // path of the log file

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when the current process has exited
}

func newProc(t *testing.T, dir, name string, env []string, args ...string) *proc {
	p := &proc{name: name, args: args, env: env, log: filepath.Join(dir, name+".log")}
	t.Cleanup(p.stop)
	return p
}

// start starts the process; it must not be running.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is running", p.name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "---- %s start %s\n", time.Now().Format(time.RFC3339Nano), p.name)
	cmd := exec.Command(p.args[0], p.args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = p.env, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		f.Close()
		close(done)
	}()
	p.cmd, p.done = cmd, done
	return nil
}

// signal sends sig to the process group and waits up to wait for the
// process to exit; then it sends SIGKILL.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
		return
	case <-time.After(wait):
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
}

// kill SIGKILLs the process (no shutdown of any kind) and reaps it.
func (p *proc) kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// stop ends the process gracefully (SIGTERM, then SIGKILL after 10 s).
func (p *proc) stop() { p.signal(syscall.SIGTERM, 10*time.Second) }

// pid returns the PID of the current process, 0 if none runs.
func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// tail returns the end of the log, for failure messages.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// waitHTTP polls url until it answers want, the process dies, or timeout.
func waitHTTP(ctx context.Context, p *proc, url string, want int, timeout time.Duration) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
		}
		if p != nil && p.pid() == 0 {
			return fmt.Errorf("%s exited before %s answered %d:\n%s", p.name, url, want, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer %d within %s (last error %v)", url, want, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// requireFree fails the test if something listens on the port: the suite
// must not run beside whatever holds its ports.
func requireFree(t *testing.T, host string, port int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), 200*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatalf("port %s:%d is taken; choose other ports with FIELDSYNC_FAULTS_PORT_BASE", host, port)
	}
}

// run runs a command to its end and returns its combined output.
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v: %w: %s", name, args, err, out)
	}
	return string(out), nil
}
