package deploy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"debug/elf"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/fieldsync/fieldsync/server/metrics"
)

// composeEnv is what .env holds in production.
var composeEnv = []string{
	"MONGO_ROOT_PASSWORD=root-secret", "FIELDSYNC_MONGO_PASSWORD=app-secret", "MINIO_ROOT_PASSWORD=minio-secret",
	"FIELDSYNC_ADMIN_TOKEN=0123456789abcdef0123456789abcdef", "PUBLIC_HOST=sync.example.cn",
}

func loadCompose(t *testing.T, env []string) (*types.Project, error) {
	t.Helper()
	// The secrets' files must exist for the loader; they are never
	// committed, so the test makes empty ones in a copy of the folder.
	dir := t.TempDir()
	for _, f := range []string{"compose.yaml", "haproxy/haproxy.cfg", "mongo/init-replica-set.js"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Join(dir, filepath.Dir(f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"mongo-keyfile", "tls.pem"} {
		os.WriteFile(filepath.Join(dir, f), nil, 0o600)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "compose.yaml")},
		cli.WithWorkingDirectory(dir), cli.WithEnv(env), cli.WithName("fieldsync"))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(t.Context())
}

// TestComposeTopology loads deploy/compose.yaml with the compose-spec
// library and checks the production topology: a three-member MongoDB
// replica set with keyfile authentication, MinIO on four nodes in
// distributed mode, two fieldsyncd replicas built from deploy/Dockerfile
// and run unprivileged and read-only, and a TLS proxy that is the only
// published service.
func TestComposeTopology(t *testing.T) {
	p, err := loadCompose(t, composeEnv)
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	svc := func(name string) types.ServiceConfig {
		s, err := p.GetService(name)
		if err != nil {
			t.Fatalf("no service %s", name)
		}
		return s
	}
	if got := len(p.Services); got != 11 {
		t.Errorf("%d services, want 11 (proxy, 2 fieldsyncd, 3 mongo, mongo-init, 4 minio): %v", got, p.ServiceNames())
	}
	for _, name := range []string{"mongo1", "mongo2", "mongo3"} {
		s := svc(name)
		cmd := strings.Join(s.Entrypoint, " ")
		for _, want := range []string{"--replSet rs0", "--keyFile", "mongo_keyfile"} {
			if !strings.Contains(cmd, want) {
				t.Errorf("%s: entrypoint lacks %q: %s", name, want, cmd)
			}
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes ports %v", name, s.Ports)
		}
		if s.HealthCheck == nil {
			t.Errorf("%s has no health check (mongo-init waits on it)", name)
		}
	}
	js, err := os.ReadFile("mongo/init-replica-set.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"mongo1:27017", "mongo2:27017", "mongo3:27017"} {
		if !strings.Contains(string(js), m) {
			t.Errorf("init-replica-set.js does not name %s", m)
		}
	}
	for i := 1; i <= 4; i++ {
		s := svc("minio" + string(rune('0'+i)))
		if got := strings.Join(s.Command, " "); got != "server http://minio{1...4}:9000/data" {
			t.Errorf("minio%d: command %q is not distributed over the four nodes", i, got)
		}
		if s.Build == nil || s.Build.Dockerfile != "deploy/minio.Dockerfile" {
			t.Errorf("minio%d is not built from deploy/minio.Dockerfile (the pinned source)", i)
		}
	}
	for _, name := range []string{"fieldsyncd1", "fieldsyncd2"} {
		s := svc(name)
		if s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
			t.Errorf("%s is not built from deploy/Dockerfile", name)
		}
		if s.User == "" || strings.HasPrefix(s.User, "0") || s.User == "root" {
			t.Errorf("%s runs as %q, want an unprivileged user", name, s.User)
		}
		if !s.ReadOnly || !slices.Contains(s.CapDrop, "ALL") {
			t.Errorf("%s: read_only %v, cap_drop %v", name, s.ReadOnly, s.CapDrop)
		}
		uri := s.Environment["FIELDSYNC_MONGO_URI"]
		if uri == nil || !strings.Contains(*uri, "replicaSet=rs0") || !strings.Contains(*uri, "mongo3:27017") {
			t.Errorf("%s: FIELDSYNC_MONGO_URI does not name the replica set: %v", name, uri)
		}
		for _, v := range []string{"FIELDSYNC_MINIO_ENDPOINT", "FIELDSYNC_MINIO_ACCESS_KEY", "FIELDSYNC_MINIO_SECRET_KEY", "FIELDSYNC_ADMIN_TOKEN", "FIELDSYNC_MINIO_PUBLIC_ENDPOINT"} {
			if e := s.Environment[v]; e == nil || *e == "" {
				t.Errorf("%s: %s is not set", name, v)
			}
		}
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes ports %v: only the proxy may", name, s.Ports)
		}
	}
	proxy := svc("proxy")
	var published []string
	for _, port := range proxy.Ports {
		published = append(published, port.Published)
	}
	slices.Sort(published)
	if !slices.Equal(published, []string{"443", "9443"}) {
		t.Errorf("proxy publishes %v, want 443 and 9443", published)
	}
	if n := p.Networks["backend"]; !n.Internal {
		t.Error("the backend network is not internal")
	}

	// Without the secrets in .env the file refuses to load, naming them.
	if _, err := loadCompose(t, nil); err == nil || !strings.Contains(err.Error(), "MONGO_ROOT_PASSWORD") {
		t.Errorf("loading without .env: %v, want an error naming MONGO_ROOT_PASSWORD", err)
	}
}

// selfSigned writes a throwaway certificate and key as one PEM file.
func selfSigned(t *testing.T, path string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sync.example.cn"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{"sync.example.cn"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	out := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestHAProxyConfig has HAProxy check deploy/haproxy/haproxy.cfg, with a
// throwaway certificate in place of the secret.
func TestHAProxyConfig(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy is not installed (deploy/faults.sh installs it from Debian)")
	}
	dir := t.TempDir()
	selfSigned(t, filepath.Join(dir, "tls.pem"))
	b, err := os.ReadFile("haproxy/haproxy.cfg")
	if err != nil {
		t.Fatal(err)
	}
	// No name is looked up here (init-addr none): the servers' names
	// exist only on the Compose network.
	text := strings.ReplaceAll(string(b), "/run/secrets/tls.pem", filepath.Join(dir, "tls.pem"))
	text = strings.ReplaceAll(text, "init-addr last,libc,none", "init-addr none")
	cfg := filepath.Join(dir, "haproxy.cfg")
	os.WriteFile(cfg, []byte(text), 0o644)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, bin, "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
}

// unit reads the Key=Value lines of a systemd unit.
func unit(t *testing.T, path string) map[string][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: not Key=Value: %q", path, line)
			continue
		}
		out[k] = append(out[k], v)
	}
	return out
}

// TestSystemdUnitIsHardened checks the sandboxing of the fieldsyncd
// unit: no privileges, a read-only system, no devices or kernel access,
// only the network families it needs, and a restart on failure.
func TestSystemdUnitIsHardened(t *testing.T) {
	u := unit(t, "systemd/fieldsyncd@.service")
	want := map[string]string{
		"DynamicUser": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "ProtectSystem": "strict",
		"ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "MemoryDenyWriteExecute": "yes",
		"SystemCallFilter": "@system-service", "Restart": "always", "EnvironmentFile": "/etc/fieldsync/fieldsyncd.env",
		"Environment": "FIELDSYNC_ADDR=127.0.0.1:%i",
	}
	for k, v := range want {
		if !slices.Contains(u[k], v) {
			t.Errorf("%s=%q missing (have %q)", k, v, u[k])
		}
	}
}

// TestImagesBuildStaticUnprivileged checks both Dockerfiles (multi-stage,
// CGO off, an unprivileged user in the final stage; MinIO's at the pin of
// deploy/stack.sh), and builds fieldsyncd as deploy/Dockerfile does to
// check that the binary is static: no interpreter, no shared library.
func TestImagesBuildStaticUnprivileged(t *testing.T) {
	stack, err := os.ReadFile("stack.sh")
	if err != nil {
		t.Fatal(err)
	}
	pin := regexp.MustCompile(`(?m)^MINIO_VERSION=(\S+)$`).FindSubmatch(stack)
	if pin == nil {
		t.Fatal("no MINIO_VERSION in stack.sh")
	}
	for _, f := range []string{"Dockerfile", "minio.Dockerfile"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if n := len(regexp.MustCompile(`(?m)^FROM `).FindAllString(s, -1)); n < 2 {
			t.Errorf("%s has %d stages, want a build stage and a runtime stage", f, n)
		}
		final := s[strings.LastIndex(s, "\nFROM "):]
		if m := regexp.MustCompile(`(?m)^USER (\d+)`).FindStringSubmatch(final); m == nil || m[1] == "0" {
			t.Errorf("%s: the final stage has no unprivileged numeric USER", f)
		}
		if !strings.Contains(s, "CGO_ENABLED=0") {
			t.Errorf("%s does not build with CGO_ENABLED=0", f)
		}
		if f == "minio.Dockerfile" && !strings.Contains(s, "github.com/minio/minio@"+string(pin[1])) {
			t.Errorf("minio.Dockerfile does not build MinIO at the pin of stack.sh, %s", pin[1])
		}
	}
	if testing.Short() {
		return
	}
	bin := filepath.Join(t.TempDir(), "fieldsyncd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "github.com/fieldsync/fieldsync/server/cmd/fieldsyncd")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("fieldsyncd has an ELF interpreter: it is not static")
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("fieldsyncd needs shared libraries %v", libs)
	}
}

// TestAlertRulesNameExportedMetrics checks that every fieldsync_ metric
// the alert rules use is one fieldsyncd exports, so that a renamed metric
// cannot silence an alert.
func TestAlertRulesNameExportedMetrics(t *testing.T) {
	b, err := os.ReadFile("prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatal(err)
	}
	m := metrics.New("test")
	// Every vector gets a series, so that Gather lists it.
	m.ObserveRequest("/healthz", "GET", 200, time.Millisecond)
	m.SyncOutcome("applied", 1)
	m.UploadBytes("chunk", 1)
	m.ObserveStore(metrics.StoreMongo, "find", time.Millisecond, true)
	m.Pool(metrics.PoolCheckoutFailed, 0, "timeout")
	families, err := m.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, f := range families {
		exported[f.GetName()] = true
	}
	name := regexp.MustCompile(`fieldsync_[a-z0-9_]+`)
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("a rule without alert or expr: %+v", r)
			}
			for _, used := range name.FindAllString(r.Expr, -1) {
				n++
				base := used
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if b, ok := strings.CutSuffix(used, suffix); ok && exported[b] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("alert %s uses %s, which fieldsyncd does not export", r.Alert, used)
				}
			}
		}
	}
	if n == 0 {
		t.Error("the alert rules use no fieldsync metric")
	}
}
