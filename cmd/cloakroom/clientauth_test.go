package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckClientKey: a private_key_file that exists but holds no usable
// key (here a 1024-bit RSA key, and a file that is no key at all) is
// refused by check, at its line, and by serve, for the same reason: check
// never accepts what serve refuses. The file's contents are never printed.
func TestCheckClientKey(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name, key, why string
	}{
		{"RSA 1024", rsa1024, "RSA key has 1024 bits; at least 2048 are needed"},
		{"no key", "not-a-key-at-all\n", "is neither PEM nor JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keyFile := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".pem")
			if err := os.WriteFile(keyFile, []byte(tc.key), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := filepath.Join(dir, "c.yaml")
			body := strings.Replace(minimalConfig, "  client_secret: s3cret-s3cret\n",
				"  client_auth: private_key_jwt\n  private_key_file: "+keyFile+"\n", 1)
			if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, verb := range []string{"check", "serve"} {
				var stdout, stderr bytes.Buffer
				if code := run([]string{verb, "--config", cfg}, &stdout, &stderr); code != 1 {
					t.Fatalf("%s: exit %d, want 1; %s %s", verb, code, stdout.String(), stderr.String())
				}
				out := stdout.String() + stderr.String()
				if !strings.Contains(out, "oidc.private_key_file") || !strings.Contains(out, tc.why) {
					t.Errorf("%s: output %q, want oidc.private_key_file refused: %s", verb, out, tc.why)
				}
				if verb == "check" && !strings.Contains(out, "c.yaml:6: oidc.private_key_file") {
					t.Errorf("check: output %q lacks the key's line", out)
				}
				if strings.Contains(out, "not-a-key-at-all") || strings.Contains(out, "MIIC") {
					t.Errorf("%s: the key file's contents were printed: %s", verb, out)
				}
			}
		})
	}
}

// rsa1024 is a throwaway 1024-bit RSA key (too small to be accepted).
const rsa1024 = `-----BEGIN PRIVATE KEY-----
MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKNdZ6Jn6j5hdj8H
ihhLIY2QeSgjIjX40bl4dC6T64+sUNxZPxmsIreRLVfamzycFZDCnKv5s0fw+2m4
qqkBT0JHBQ+H8SrFhr8SgVDEcxfhS4xafhV0jNodwS40msJp6I8PzwN7hGDewjZJ
+YUU7oL1bY+JuFdfxwMotjaa8TDPAgMBAAECgYEAmmLYYMwRvFhA9nn6kNDX6cBC
L6NcXmNCWCQ0sBwMvx+a31LcZjeeK5rgnikzEcl0O/UfOQtm2bMs9hGV/tgE/Nwt
VeWnP7LUXPjjZ1gLxc1nt1bBYar9IMZIkWh6qDgVs0cIFy24TVBncUNVaB6+BHd7
gIJzRDehPoCFKz8iGPkCQQDPYZzP809GZRA87OfVlytO24vEGJn0QJvhH7MLdOEU
5RwJM2ygW9Wowx4WZ/x/7jZ3RoCTVl9uN35nbcAr/h1FAkEAyaoPqrK4Oe0nH1m5
MWB5N6Iy7g/nSh9lpqI31hZ0qr5zFbSXVQuSqRQhb7GcVsKoNLpDoDcgqF11dmiT
YdqFAwJAFSDXziP23rArQFnOoOc+5VDe44KyJL10ZDJLlo445F0XRySzG39fvErs
xNGhWxNU/z/yl5BENsF2omj/HDxOlQJBAJCsWCD1pgSohfCPxbQOqeenjTIMZrle
XOZ2aehEo936U0W3EPoKG2UA9BvVJ3t2moV5OxqtcdhXc/VGgLUqt1ECQHOltwAi
kc6NCqM3DQ3EkcB4HwrbX0c34yLRJywSgkSfm60vztez7+JDAn6o2uHfm8NfO8Tj
/VuGO6BOF5EW5t0=
-----END PRIVATE KEY-----
`
