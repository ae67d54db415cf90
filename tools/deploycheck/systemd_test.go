package deploycheck

import (
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const unitFile = "cloakroom.service"

func readUnit(t *testing.T) Unit {
	t.Helper()
	f, err := os.Open(filepath.Join(deployDir, "systemd", unitFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := ParseUnit(f)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestSystemdUnitHardening(t *testing.T) {
	u := readUnit(t)
	tests := []struct {
		key, want string
	}{
		{"Type", "exec"},
		{"ExecStart", "/usr/local/bin/cloakroom serve --config /etc/cloakroom/cloakroom.yaml"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"KillSignal", "SIGTERM"},
		{"Restart", "on-failure"},
		{"DynamicUser", "yes"},
		{"StateDirectory", "cloakroom"},
		{"WorkingDirectory", "/var/lib/cloakroom"},
		{"UMask", "0077"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"AmbientCapabilities", ""},
		{"ProtectSystem", "strict"},
		{"ProtectHome", "yes"},
		{"PrivateTmp", "yes"},
		{"PrivateDevices", "yes"},
		{"ProtectKernelTunables", "yes"},
		{"ProtectKernelModules", "yes"},
		{"ProtectKernelLogs", "yes"},
		{"ProtectControlGroups", "yes"},
		{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
		{"RestrictNamespaces", "yes"},
		{"RestrictSUIDSGID", "yes"},
		{"LockPersonality", "yes"},
		{"MemoryDenyWriteExecute", "yes"},
		{"SystemCallArchitectures", "native"},
		{"EnvironmentFile", "/etc/cloakroom/cloakroom.env"},
		{"LoadCredential", "oidc-client-secret:/etc/cloakroom/credentials/oidc-client-secret"},
	}
	for _, tt := range tests {
		if got, ok := u.Last("Service", tt.key); !ok || got != tt.want {
			t.Errorf("[Service] %s=%q (set: %v), want %q", tt.key, got, ok, tt.want)
		}
	}
	if f := u["Service"]["SystemCallFilter"]; !slices.Contains(f, "@system-service") {
		t.Errorf("SystemCallFilter %q: want @system-service", f)
	}
	// The drain takes up to 30 s: systemd must not SIGKILL before.
	stop, _ := u.Last("Service", "TimeoutStopSec")
	if d, err := time.ParseDuration(stop); err != nil || d <= 30*time.Second {
		t.Errorf("TimeoutStopSec=%s: want more than the 30 s drain", stop)
	}
	if _, ok := u.Last("Install", "WantedBy"); !ok {
		t.Error("[Install] WantedBy: missing")
	}
}

// TestSystemdAnalyze runs systemd's own checks on the unit, with ExecStart
// pointed at a freshly built binary (verify wants it to exist): verify
// (syntax, directives) and the offline security score.
func TestSystemdAnalyze(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if requireIntegration() {
			t.Fatal("systemd-analyze is not installed (Debian package systemd)")
		}
		t.Skip("systemd-analyze is not installed (Debian package systemd)")
	}
	data, err := os.ReadFile(filepath.Join(deployDir, "systemd", unitFile))
	if err != nil {
		t.Fatal(err)
	}
	unit := strings.ReplaceAll(string(data), "/usr/local/bin/cloakroom", cloakroomBinary(t))
	dir := t.TempDir()
	path := filepath.Join(dir, unitFile)
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", path},
		// Exposure 0.0 (locked down) to 10.0 (unsafe); the threshold is in tenths.
		{"security", "--offline=yes", "--threshold=15", path},
	} {
		out, err := exec.Command(tool, args...).CombinedOutput()
		if err != nil {
			t.Errorf("systemd-analyze %s: %v\n%s", args[0], err, out)
		}
	}
}

// TestSystemdConfig runs `cloakroom check` on the example configuration as
// the unit would: the secret from a credential file, the key from the
// environment file, in the state directory.
func TestSystemdConfig(t *testing.T) {
	creds := t.TempDir()
	if err := os.WriteFile(filepath.Join(creds, "oidc-client-secret"), []byte("example-client-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cmd := exec.Command(cloakroomBinary(t), "check", "--config", filepath.Join(deployDir, "systemd", "cloakroom.yaml"))
	cmd.Dir = state
	cmd.Env = []string{
		"CREDENTIALS_DIRECTORY=" + creds,
		"SESSION_KEY=base64:" + base64.StdEncoding.EncodeToString([]byte("systemd-example-session-key-0123")),
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(out)), ": ok") || strings.Contains(string(out), "warning") {
		t.Errorf("cloakroom check: %v\n%s", err, out)
	}
}
