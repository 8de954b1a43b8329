package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// minioEnv is the environment of a MinIO process: only its own
// variables (MinIO reads every MINIO_* as configuration).
func minioEnv(key, secret string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"MINIO_ROOT_USER=" + key, "MINIO_ROOT_PASSWORD=" + secret, "MINIO_BROWSER=off", "MINIO_UPDATE=off"}
}

// cluster is MinIO in distributed mode: one process per node, each with
// one drive, every node listed in every node's arguments, so objects are
// erasure coded over the four drives (EC:2 for four: any one node may be
// lost for reads and writes).
type cluster struct {
	nodes []*proc
	addrs []string // host:port of each node
	how   string   // where the nodes listen, for the report
}

// orchestrated reports whether MinIO will believe it runs in a container:
// it then refuses endpoints that resolve to loopback addresses and waits
// for them forever.
func orchestrated() bool {
	for _, f := range []string{"/.dockerenv", "/run/.containerenv"} {
		if _, err := os.Stat(f); err == nil {
			return true
		}
	}
	return false
}

// nodeHost returns the address the nodes of a cluster listen on: 127.0.0.1
// where MinIO accepts loopback endpoints, otherwise the address of a
// network namespace the suite makes for them (joined to this one by a
// veth pair, so that nothing leaves the machine), and the command prefix
// that runs a program inside it.
func (s *suite) nodeHost(t *testing.T) (host string, prefix []string, how string) {
	t.Helper()
	if !orchestrated() {
		return "127.0.0.1", nil, "4 processes on 127.0.0.1"
	}
	net3 := os.Getenv("FIELDSYNC_FAULTS_NETNS_PREFIX")
	if net3 == "" {
		net3 = "10.213." + strconv.Itoa(s.cfg.portBase%250)
	}
	ns := "fsf" + strconv.Itoa(s.cfg.portBase)
	hostIf, nsIf := ns+"h", ns+"n"
	ctx := t.Context()
	cleanup := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		run(ctx, "ip", "link", "del", hostIf)
		run(ctx, "ip", "netns", "del", ns)
	}
	cleanup() // a leftover of an interrupted run
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", hostIf, "type", "veth", "peer", "name", nsIf},
		{"ip", "link", "set", nsIf, "netns", ns},
		{"ip", "addr", "add", net3 + ".1/30", "dev", hostIf},
		{"ip", "link", "set", hostIf, "up"},
		{"ip", "netns", "exec", ns, "ip", "addr", "add", net3 + ".2/30", "dev", nsIf},
		{"ip", "netns", "exec", ns, "ip", "link", "set", nsIf, "up"},
		{"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"},
	}
	t.Cleanup(cleanup)
	for _, st := range steps {
		if out, err := run(ctx, st[0], st[1:]...); err != nil {
			t.Fatalf("MinIO refuses loopback endpoints in a container (/.dockerenv), and a network namespace for its nodes could not be made: %v\n%s", err, out)
		}
	}
	return net3 + ".2", []string{"ip", "netns", "exec", ns}, "4 processes in a network namespace of the suite (" + net3 + ".2), reached over a veth pair"
}

// distributed starts a four-node MinIO cluster with one drive per node
// under dir and waits until it has write quorum.
func (s *suite) distributed(t *testing.T, dir string, ports []int, key, secret string) *cluster {
	t.Helper()
	host, prefix, how := s.nodeHost(t)
	c := &cluster{how: how}
	var endpoints []string
	env := minioEnv(key, secret)
	for i, port := range ports {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		// Each node's drive is a filesystem of its own: MinIO refuses
		// drives on the root filesystem (a production safeguard); where
		// nothing can be mounted, MINIO_CI_CD lifts that check instead.
		drive := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if what, err := smallDisk(t, drive, 512<<20); err != nil {
			if !slices.Contains(env, "MINIO_CI_CD=on") {
				env = append(env, "MINIO_CI_CD=on")
				c.how += " (drives on the root filesystem, MINIO_CI_CD=on: " + err.Error() + ")"
			}
		} else if i == 0 {
			c.how += ", each node's drive " + what
		}
		c.addrs = append(c.addrs, addr)
		endpoints = append(endpoints, "http://"+addr+drive)
	}
	for i, addr := range c.addrs {
		args := append(append([]string{}, prefix...), s.cfg.minio, "server", "--quiet", "--address", addr)
		args = append(args, endpoints...)
		p := newProc(t, dir, fmt.Sprintf("minio%d", i), env, args...)
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, p)
	}
	for i := range c.nodes {
		if err := waitHTTP(t.Context(), c.nodes[i], "http://"+c.addrs[i]+"/minio/health/cluster", 200, 90*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// ---------------------------------------------------------------- a full disk

// smallDisk mounts a filesystem of size bytes at dir: a tmpfs, or if that
// is refused a loop-mounted ext4 image. It returns how, or an error saying
// why neither works (not root, no mount capability).
func smallDisk(t *testing.T, dir string, size int64) (string, error) {
	ctx := t.Context()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	umount := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		run(ctx, "umount", "-l", dir)
	}
	_, err1 := run(ctx, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir)
	if err1 == nil {
		t.Cleanup(umount)
		return fmt.Sprintf("a tmpfs of %d MiB", size>>20), nil
	}
	img := dir + ".img"
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	f.Truncate(size)
	f.Close()
	t.Cleanup(func() { os.Remove(img) })
	if _, err := run(ctx, "mkfs.ext4", "-q", "-F", img); err != nil {
		return "", fmt.Errorf("tmpfs: %v; ext4 image: %v", err1, err)
	}
	if _, err := run(ctx, "mount", "-o", "loop", img, dir); err != nil {
		return "", fmt.Errorf("tmpfs: %v; loop mount: %v", err1, err)
	}
	t.Cleanup(umount)
	return fmt.Sprintf("a loop-mounted ext4 of %d MiB", size>>20), nil
}

// freeBytes returns the space left on the filesystem of path.
func freeBytes(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// fill writes a ballast file at path that leaves about keep bytes free on
// its filesystem.
func fill(path string, keep int64) error {
	free, err := freeBytes(filepath.Dir(path))
	if err != nil {
		return err
	}
	n := free - keep
	if n <= 0 {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	for n > 0 {
		k := min(n, int64(len(buf)))
		if _, err := f.Write(buf[:k]); err != nil {
			return fmt.Errorf("ballast: %w", err)
		}
		n -= k
	}
	return f.Sync()
}
