package deploycheck

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// rel renders for the oldest Kubernetes the chart supports (the preStop
// sleep action is on by default from 1.30).
var rel = Release{Name: "web", Namespace: "shop", KubeVersion: "v1.30.0"}

func ciValues(name string) string { return filepath.Join(chartDir, "ci", name) }

func chartValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// existingSecrets stands in for Secrets the operator made outside the chart.
var existingSecrets = map[string]map[string]string{
	"cloakroom-credentials": {
		"session-key":          "base64:" + base64.StdEncoding.EncodeToString([]byte("existing-secret-session-key-0123")),
		"session-key-previous": "existing-secret-previous-key-0123",
		"oidc-client-secret":   "existing-secret-client-secret",
		"admin-token":          "existing-secret-admin-token-0123456789",
	},
}

// rendered is a decoded release, indexed for the checks.
type rendered struct {
	objs       []Object
	deployment *appsv1.Deployment
	configMap  *corev1.ConfigMap
	services   map[string]*corev1.Service
	secrets    map[string]map[string]string // the chart's own, decoded, plus existingSecrets
	kinds      []string                     // "Kind/name", sorted
}

func renderRelease(t *testing.T, files []string, set map[string]any) *rendered {
	t.Helper()
	out, err := Render(chartDir, rel, files, set)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	r := &rendered{objs: objs, services: map[string]*corev1.Service{}, secrets: map[string]map[string]string{}}
	for name, s := range existingSecrets {
		r.secrets[name] = s
	}
	for _, o := range objs {
		r.kinds = append(r.kinds, o.Kind+"/"+o.Name)
		switch v := o.Obj.(type) {
		case *appsv1.Deployment:
			r.deployment = v
		case *corev1.ConfigMap:
			r.configMap = v
		case *corev1.Service:
			r.services[v.Name] = v
		case *corev1.Secret:
			if len(v.StringData) > 0 {
				t.Errorf("Secret %s uses stringData; want data", v.Name)
			}
			m := map[string]string{}
			for k, b := range v.Data {
				m[k] = string(b)
			}
			r.secrets[v.Name] = m
		}
	}
	slices.Sort(r.kinds)
	if r.deployment == nil || r.configMap == nil {
		t.Fatalf("got %v, want a Deployment and a ConfigMap", r.kinds)
	}
	return r
}

func TestChart(t *testing.T) {
	tests := []struct {
		name      string
		files     []string
		wantKinds []string
		replicas  int32 // 0: left to the HPA
		store     string
		keys      int
	}{
		{
			name:  "defaults",
			files: []string{ciValues("default-values.yaml")},
			wantKinds: []string{
				"ConfigMap/web-cloakroom", "Deployment/web-cloakroom", "PodDisruptionBudget/web-cloakroom",
				"Secret/web-cloakroom", "Service/web-cloakroom", "ServiceAccount/web-cloakroom",
			},
			replicas: 1,
			store:    "file:/var/lib/cloakroom/sessions.db",
			keys:     1,
		},
		{
			name:  "every option",
			files: []string{ciValues("full-values.yaml")},
			wantKinds: []string{
				"ConfigMap/web-cloakroom", "Deployment/web-cloakroom", "HorizontalPodAutoscaler/web-cloakroom",
				"Ingress/web-cloakroom", "NetworkPolicy/web-cloakroom", "PodDisruptionBudget/web-cloakroom",
				"Secret/web-cloakroom", "Service/web-cloakroom", "Service/web-cloakroom-admin",
				"ServiceAccount/web-cloakroom", "ServiceMonitor/web-cloakroom",
			},
			store: "rediss://:${REDIS_PASSWORD}@redis-master.redis.svc.cluster.local:6379/0",
			keys:  2,
		},
		{
			name:  "existing secret",
			files: []string{ciValues("existing-secret-values.yaml")},
			wantKinds: []string{
				"ConfigMap/web-cloakroom", "Deployment/web-cloakroom", "PodDisruptionBudget/web-cloakroom",
				"Service/web-cloakroom", "ServiceAccount/web-cloakroom",
			},
			replicas: 2,
			store:    "cookie",
			keys:     2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderRelease(t, tt.files, nil)
			if !slices.Equal(r.kinds, tt.wantKinds) {
				t.Errorf("got objects %v, want %v", r.kinds, tt.wantKinds)
			}
			d := r.deployment
			switch {
			case tt.replicas == 0 && d.Spec.Replicas != nil:
				t.Errorf("got replicas %d with an HPA, want none", *d.Spec.Replicas)
			case tt.replicas != 0 && (d.Spec.Replicas == nil || *d.Spec.Replicas != tt.replicas):
				t.Errorf("got replicas %v, want %d", d.Spec.Replicas, tt.replicas)
			}
			cfg := renderedConfig(t, r)
			session := cfg["session"].(map[string]any)
			if got := session["store"]; got != tt.store {
				t.Errorf("got session.store %v, want %s", got, tt.store)
			}
			if got := len(session["keys"].([]any)); got != tt.keys {
				t.Errorf("got %d session keys, want %d", got, tt.keys)
			}
			checkPod(t, r, cfg)
			checkServices(t, r)
			checkNoSecretInPlainSight(t, r)
			for _, o := range r.objs {
				checkObject(t, r, o)
			}
			cloakroomCheck(t, r)
		})
	}
}

// renderedConfig parses the ConfigMap's cloakroom.yaml.
func renderedConfig(t *testing.T, r *rendered) map[string]any {
	t.Helper()
	text, ok := r.configMap.Data["cloakroom.yaml"]
	if !ok {
		t.Fatalf("ConfigMap keys %v, want cloakroom.yaml", r.configMap.Data)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal([]byte(text), &cfg); err != nil {
		t.Fatalf("cloakroom.yaml: %v", err)
	}
	return cfg
}

func portOf(t *testing.T, hostPort any) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(fmt.Sprint(hostPort))
	n, err2 := strconv.Atoi(p)
	if err != nil || err2 != nil {
		t.Fatalf("address %v has no port", hostPort)
	}
	return int32(n)
}

// checkPod asserts the pod's security, probes, ports, volumes and drain.
func checkPod(t *testing.T, r *rendered, cfg map[string]any) {
	t.Helper()
	d := r.deployment
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("got %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot, a non-zero runAsUser and seccomp RuntimeDefault", psc)
	}
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("container without securityContext")
	case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
		t.Error("container: want runAsNonRoot")
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container: want readOnlyRootFilesystem")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container: want allowPrivilegeEscalation false")
	case sc.Privileged != nil && *sc.Privileged:
		t.Error("container: privileged")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("container capabilities %+v: want drop [ALL], add none", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("container: want seccomp RuntimeDefault")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod: want automountServiceAccountToken false")
	}
	if len(c.Command) > 0 || len(c.Args) > 0 {
		t.Errorf("container command %v args %v: want the image's entrypoint %v", c.Command, c.Args, wantEntrypoint)
	}

	ports := map[string]int32{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := portOf(t, cfg["listen"]); ports["http"] != want {
		t.Errorf("containerPort http %d, want listen's %d", ports["http"], want)
	}
	adminHost, _, _ := net.SplitHostPort(fmt.Sprint(cfg["admin_listen"]))
	if want := portOf(t, cfg["admin_listen"]); ports["admin"] != want || adminHost != "0.0.0.0" {
		t.Errorf("containerPort admin %d, admin_listen %v: want the same port on 0.0.0.0, where the kubelet reaches it", ports["admin"], cfg["admin_listen"])
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"readiness", c.ReadinessProbe, "/readyz"},
		{"liveness", c.LivenessProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s probe %+v: want an HTTP GET", p.name, p.probe)
			continue
		}
		if got := p.probe.HTTPGet; got.Path != p.path || got.Port.String() != "admin" {
			t.Errorf("%s probe GET %s on port %s, want %s on admin", p.name, got.Path, got.Port.String(), p.path)
		}
	}

	// Drain: the grace period covers the preStop sleep and the 30 s drain.
	var sleep int64
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		if c.Lifecycle.PreStop.Sleep == nil {
			t.Error("preStop: want a sleep action (the image has no shell)")
		} else {
			sleep = c.Lifecycle.PreStop.Sleep.Seconds
		}
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g <= sleep+30 {
		t.Errorf("terminationGracePeriodSeconds %v: want more than preStop %d s + 30 s drain", g, sleep)
	}

	// The root filesystem is read-only; the only writable mounts are
	// emptyDirs, and the configuration sits where the entrypoint reads it.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	configFile := wantEntrypoint[len(wantEntrypoint)-1]
	foundConfig := false
	for _, m := range c.VolumeMounts {
		v := vols[m.Name]
		if !m.ReadOnly && v.EmptyDir == nil {
			t.Errorf("volume %s is writable and not an emptyDir", m.Name)
		}
		if v.ConfigMap != nil {
			foundConfig = m.ReadOnly && v.ConfigMap.Name == r.configMap.Name &&
				slices.ContainsFunc(v.ConfigMap.Items, func(k corev1.KeyToPath) bool {
					return k.Key == "cloakroom.yaml" && filepath.Join(m.MountPath, k.Path) == configFile
				})
		}
	}
	if !foundConfig {
		t.Errorf("mounts %+v: want the ConfigMap's cloakroom.yaml read-only at %s", c.VolumeMounts, configFile)
	}
	store := cfg["session"].(map[string]any)["store"].(string)
	if file, ok := strings.CutPrefix(store, "file:"); ok {
		writable := slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return !m.ReadOnly && strings.HasPrefix(file, m.MountPath+"/")
		})
		if !writable {
			t.Errorf("the file store %s is on no writable volume", file)
		}
	}

	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("pod template: want a checksum/config annotation")
	}
	sel, err := labels.ValidatedSelectorFromSet(d.Spec.Selector.MatchLabels)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Deployment selector %v does not select its pods %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
}

// checkServices asserts that the gateway's Service reaches the http port
// and that the admin port is on no Service but the admin one.
func checkServices(t *testing.T, r *rendered) {
	t.Helper()
	for name, s := range r.services {
		if !labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(r.deployment.Spec.Template.Labels)) {
			t.Errorf("Service %s selects %v, not the pods", name, s.Spec.Selector)
		}
		for _, p := range s.Spec.Ports {
			want := "http"
			if strings.HasSuffix(name, "-admin") {
				want = "admin"
			}
			if p.TargetPort.String() != want {
				t.Errorf("Service %s targets port %s, want %s", name, p.TargetPort.String(), want)
			}
		}
	}
}

// checkNoSecretInPlainSight asserts that no secret value appears in the
// ConfigMap or the Deployment.
func checkNoSecretInPlainSight(t *testing.T, r *rendered) {
	t.Helper()
	plain, err := yaml.Marshal([]any{r.configMap, r.deployment})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range r.secrets {
		for k, v := range s {
			if bytes.Contains(plain, []byte(v)) {
				t.Errorf("the value of Secret %s entry %s appears in the ConfigMap or Deployment", name, k)
			}
		}
	}
}

// checkObject asserts what each optional object must point at.
func checkObject(t *testing.T, r *rendered, o Object) {
	t.Helper()
	podLabels := labels.Set(r.deployment.Spec.Template.Labels)
	switch v := o.Obj.(type) {
	case *policyv1.PodDisruptionBudget:
		sel, err := labels.ValidatedSelectorFromSet(v.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("PDB selector %v does not select the pods", v.Spec.Selector.MatchLabels)
		}
		if (v.Spec.MinAvailable == nil) == (v.Spec.MaxUnavailable == nil) {
			t.Error("PDB: want exactly one of minAvailable and maxUnavailable")
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		ref := v.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != r.deployment.Name {
			t.Errorf("HPA targets %+v, want the Deployment", ref)
		}
		if v.Spec.MinReplicas == nil || *v.Spec.MinReplicas > v.Spec.MaxReplicas {
			t.Errorf("HPA replicas %v..%d", v.Spec.MinReplicas, v.Spec.MaxReplicas)
		}
	case *monitoringv1.ServiceMonitor:
		admin := r.services[r.deployment.Name+"-admin"]
		if admin == nil {
			t.Fatal("ServiceMonitor without the admin Service")
		}
		sel, err := labels.ValidatedSelectorFromSet(v.Spec.Selector.MatchLabels)
		if err != nil || !sel.Matches(labels.Set(admin.Labels)) || sel.Matches(labels.Set(r.services[r.deployment.Name].Labels)) {
			t.Errorf("ServiceMonitor selector %v: want the admin Service only", v.Spec.Selector.MatchLabels)
		}
		if len(v.Spec.Endpoints) != 1 || v.Spec.Endpoints[0].Port != "admin" || v.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints %+v: want /metrics on admin", v.Spec.Endpoints)
		}
	case *networkingv1.Ingress:
		cfg := renderedConfig(t, r)
		host := strings.TrimPrefix(fmt.Sprint(cfg["public_url"]), "https://")
		if len(v.Spec.Rules) != 1 || v.Spec.Rules[0].Host != host {
			t.Errorf("Ingress rules %+v: want public_url's host %s", v.Spec.Rules, host)
		} else if b := v.Spec.Rules[0].HTTP.Paths[0].Backend.Service; b == nil || b.Name != r.deployment.Name || b.Port.Name != "http" {
			t.Errorf("Ingress backend %+v, want the Service's http port", b)
		}
	case *networkingv1.NetworkPolicy:
		sel, err := labels.ValidatedSelectorFromSet(v.Spec.PodSelector.MatchLabels)
		if err != nil || !sel.Matches(podLabels) {
			t.Errorf("NetworkPolicy selects %v, not the pods", v.Spec.PodSelector.MatchLabels)
		}
		for _, rule := range v.Spec.Ingress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.String() == "admin" && len(rule.From) == 0 {
					t.Error("NetworkPolicy opens the admin port to everyone")
				}
			}
		}
	}
}

// podEnv resolves the container's environment as the kubelet would, from
// values and Secret entries.
func podEnv(t *testing.T, r *rendered) []string {
	t.Helper()
	var env []string
	for _, e := range r.deployment.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			v, ok := r.secrets[ref.Name][ref.Key]
			if !ok {
				t.Fatalf("env %s: Secret %s has no entry %s", e.Name, ref.Name, ref.Key)
			}
			env = append(env, e.Name+"="+v)
		default:
			t.Fatalf("env %s: unexpected source %+v", e.Name, e.ValueFrom)
		}
	}
	return env
}

// cloakroomCheck runs `cloakroom check` on the rendered cloakroom.yaml
// with the pod's environment: the chart's configuration is one Cloakroom
// accepts. The one warning allowed is the admin listener's address.
func cloakroomCheck(t *testing.T, r *rendered) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "cloakroom.yaml")
	if err := os.WriteFile(file, []byte(r.configMap.Data["cloakroom.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cloakroomBinary(t), "check", "--config", file)
	cmd.Dir = dir
	cmd.Env = podEnv(t, r)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cloakroom check: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if last := lines[len(lines)-1]; last != file+": ok" {
		t.Errorf("cloakroom check ends with %q, want %q", last, file+": ok")
	}
	for _, l := range lines[:len(lines)-1] {
		if !strings.Contains(l, "warning: admin_listen: serves the session admin API beyond this machine") {
			t.Errorf("cloakroom check: unexpected %q", l)
		}
	}
}

// TestChartRefuses lists the values the chart refuses to render.
func TestChartRefuses(t *testing.T) {
	defaults := []string{ciValues("default-values.yaml")}
	tests := []struct {
		name  string
		files []string
		set   map[string]any
		want  string
	}{
		{"no secrets", nil, nil, "secret.sessionKey: required"},
		{"no client secret", nil, map[string]any{"secret": map[string]any{"sessionKey": "x"}}, "secret.oidcClientSecret: required"},
		{"replicas on the file store", defaults, map[string]any{"replicaCount": 2}, "2 replicas need a store they share, but the file store"},
		{"replicas on the memory store", defaults, map[string]any{"replicaCount": 3, "session": map[string]any{"store": "memory"}}, "the memory store is each pod's own"},
		{"replicas on a unix socket", defaults, map[string]any{"replicaCount": 2, "session": map[string]any{"store": "unix:///run/redis.sock"}}, "the unix store is each pod's own"},
		{"autoscaling on the file store", defaults, map[string]any{"autoscaling": map[string]any{"enabled": true}}, "6 replicas need a store they share"},
		{"literal redis password", defaults, map[string]any{"session": map[string]any{"store": "redis://:hunter2@redis:6379/0"}}, "put the password in secret.redisPassword"},
		{"redis password not in the secret", defaults, map[string]any{"session": map[string]any{"store": "redis://:${REDIS_PASSWORD}@redis:6379/0"}}, "the Secret has no redis-password"},
		{"file store off the data volume", defaults, map[string]any{"session": map[string]any{"store": "file:/tmp/s.db"}}, "must lie under /var/lib/cloakroom/"},
		{"listen in config", defaults, map[string]any{"config": map[string]any{"listen": ":80"}}, "config.listen: is set by the chart"},
		{"session keys in config", defaults, map[string]any{"config": map[string]any{"session": map[string]any{"keys": []any{"k"}}}}, "config.session.keys: is set by the chart"},
		{"client secret in config", defaults, map[string]any{"config": map[string]any{"oidc": map[string]any{"client_secret": "s"}}}, "config.oidc.client_secret: is set by the chart"},
		{"grace shorter than the drain", defaults, map[string]any{"terminationGracePeriodSeconds": 30}, "must exceed preStopSleepSeconds + 30"},
		{"both PDB bounds", defaults, map[string]any{"podDisruptionBudget": map[string]any{"minAvailable": 1}}, "not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(chartDir, rel, tt.files, tt.set)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestChartAccepts lists near misses of TestChartRefuses that are fine.
func TestChartAccepts(t *testing.T) {
	defaults := []string{ciValues("default-values.yaml")}
	tests := []struct {
		name string
		set  map[string]any
	}{
		{"one replica on the memory store", map[string]any{"session": map[string]any{"store": "memory"}}},
		{"replicas on redis", map[string]any{"replicaCount": 2, "session": map[string]any{"store": "redis://redis:6379/0"}}},
		{"replicas on sentinel", map[string]any{"replicaCount": 2, "session": map[string]any{"store": "redis-sentinel://s1:26379,s2:26379/mymaster"}}},
		{"replicas on cookies", map[string]any{"replicaCount": 2, "session": map[string]any{"store": "cookie"}}},
		{"autoscaling to one", map[string]any{"autoscaling": map[string]any{"enabled": true, "minReplicas": 1, "maxReplicas": 1}}},
		{"no preStop, shorter grace", map[string]any{"preStopSleepSeconds": 0, "terminationGracePeriodSeconds": 31}},
		{"minAvailable", map[string]any{"podDisruptionBudget": map[string]any{"minAvailable": 1, "maxUnavailable": nil}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Render(chartDir, rel, defaults, tt.set); err != nil {
				t.Errorf("got %v, want it to render", err)
			}
		})
	}
}

// TestChartRollsOnChange: a change of the configuration or the Secret
// changes the pod template, so the pods roll.
func TestChartRollsOnChange(t *testing.T) {
	files := []string{ciValues("default-values.yaml")}
	base := renderRelease(t, files, nil).deployment.Spec.Template.Annotations
	tests := []struct {
		name       string
		set        map[string]any
		annotation string
	}{
		{"config", map[string]any{"config": map[string]any{"log_level": "debug"}}, "checksum/config"},
		{"secret", map[string]any{"secret": map[string]any{"oidcClientSecret": "rotated"}}, "checksum/secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := renderRelease(t, files, tt.set).deployment.Spec.Template.Annotations
			if got[tt.annotation] == "" || got[tt.annotation] == base[tt.annotation] {
				t.Errorf("%s: got %q before and %q after, want a change", tt.annotation, base[tt.annotation], got[tt.annotation])
			}
		})
	}
}

func TestChartNotes(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string
	}{
		{"file store", "default-values.yaml", []string{"https://app.example.com/bff/callback", "every rollout signs users out"}},
		{"redis", "full-values.yaml", []string{"https://shop.example.com/bff/callback", "a store every pod shares", "sessions list"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			notes, err := Notes(chartDir, rel, []string{ciValues(tt.file)}, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES.txt lacks %q:\n%s", w, notes)
				}
			}
		})
	}
}

// freePort returns a port on 127.0.0.1 that nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestChartServes starts `cloakroom serve` on the chart's configuration (on
// free ports, the memory store, and a provider on loopback that is down) and
// asks the probes' endpoints on the admin port what the kubelet would: the
// process is alive (/healthz 200) and not ready while the provider cannot be
// discovered (/readyz 503). SIGTERM then ends it with exit 0.
func TestChartServes(t *testing.T) {
	httpPort, adminPort, idpPort := freePort(t), freePort(t), freePort(t)
	r := renderRelease(t, []string{ciValues("default-values.yaml")}, map[string]any{
		"ports":   map[string]any{"http": httpPort, "admin": adminPort},
		"session": map[string]any{"store": "memory"},
		"config": map[string]any{
			"public_url": fmt.Sprintf("http://localhost:%d", httpPort),
			"oidc":       map[string]any{"issuer": fmt.Sprintf("http://127.0.0.1:%d", idpPort)},
		},
	})
	dir := t.TempDir()
	file := filepath.Join(dir, "cloakroom.yaml")
	if err := os.WriteFile(file, []byte(r.configMap.Data["cloakroom.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cloakroomBinary(t), "serve", "--config", file)
	cmd.Dir = dir
	cmd.Env = podEnv(t, r)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	client := &http.Client{Timeout: 2 * time.Second}
	get := func(path string) (int, error) {
		resp, err := client.Get(admin + path)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// Wait for the admin listener, bounded by ctx.
	for {
		if _, err := get("/healthz"); err == nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("cloakroom serve exited: %v\n%s", err, logs.String())
		case <-ctx.Done():
			t.Fatalf("the admin listener never answered\n%s", logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	for _, tt := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusServiceUnavailable},
		{"/metrics", http.StatusOK},
	} {
		if got, err := get(tt.path); err != nil || got != tt.want {
			t.Errorf("GET %s: got %d %v, want %d", tt.path, got, err, tt.want)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("after SIGTERM: %v, want exit 0\n%s", err, logs.String())
		}
	case <-ctx.Done():
		t.Fatalf("cloakroom serve did not stop after SIGTERM\n%s", logs.String())
	}
}
