package deploycheck

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest: Source is the template it came from, Obj
// a pointer to its typed API object (*appsv1.Deployment, ...).
type Object struct {
	Source string
	Kind   string
	Name   string
	Obj    any
}

// kinds maps apiVersion and kind to a new typed object. A manifest of any
// other kind is an error: the chart renders nothing the checks do not know.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/Ingress":            func() any { return new(networkingv1.Ingress) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return new(monitoringv1.ServiceMonitor) },
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// Decode splits each rendered template into YAML documents and decodes
// every one that is not empty strictly into its API type: an unknown or
// misspelt field, a wrong type or an unknown kind is an error naming the
// template. Objects come out ordered by template, then by position.
func Decode(rendered map[string]string) ([]Object, error) {
	names := make([]string, 0, len(rendered))
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Object
	for _, n := range names {
		for _, doc := range docSep.Split(rendered[n], -1) {
			if isBlank(doc) {
				continue
			}
			o, err := decodeOne(n, doc)
			if err != nil {
				return nil, err
			}
			out = append(out, o)
		}
	}
	return out, nil
}

func decodeOne(source, doc string) (Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return Object{}, fmt.Errorf("%s: %w", source, err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObj, ok := kinds[gvk]
	if !ok {
		return Object{}, fmt.Errorf("%s: unexpected kind %q", source, gvk)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return Object{}, fmt.Errorf("%s: %s: %w", source, gvk, err)
	}
	meta := obj.(metav1.Object)
	if meta.GetName() == "" {
		return Object{}, fmt.Errorf("%s: %s without metadata.name", source, gvk)
	}
	return Object{Source: source, Kind: tm.Kind, Name: meta.GetName(), Obj: obj}, nil
}

// isBlank reports whether a YAML document holds only comments and space.
func isBlank(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}
