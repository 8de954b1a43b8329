package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// TestEnvExampleLoads checks that deploy/fieldsyncd.env.example, the
// environment file of the systemd units, is a configuration fieldsyncd
// accepts as it stands, and that it names every variable fieldsyncd
// reads, so that operators see them all.
func TestEnvExampleLoads(t *testing.T) {
	f, err := os.Open("../../../deploy/fieldsyncd.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("not KEY=VALUE: %q", line)
			continue
		}
		vars[k] = v
	}
	for _, v := range envVars {
		if _, ok := vars[v.Name]; !ok {
			t.Errorf("the example does not set %s", v.Name)
		}
	}
	c := DefaultConfig()
	if err := c.Load(nil, func(k string) string { return vars[k] }); err != nil {
		t.Fatalf("fieldsyncd refuses the example: %v", err)
	}
	if !c.MinioPublicSecure || c.MinioPublic != "photos.example.cn:443" {
		t.Errorf("public endpoint %q (secure %v)", c.MinioPublic, c.MinioPublicSecure)
	}
}
