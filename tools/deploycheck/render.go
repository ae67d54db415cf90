package deploycheck

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// Release names the release a chart is rendered for and the Kubernetes
// version it is rendered against (e.g. "v1.30.0"; empty: Helm's default).
type Release struct {
	Name        string
	Namespace   string
	KubeVersion string
}

// Render renders the chart in dir as `helm template` does: the chart's
// values.yaml, then each of valueFiles, then set, each merged over the one
// before (maps key by key, anything else replaced; a null removes a
// default). The engine is strict: a template that reads a value nobody set
// fails. It checks the chart's kubeVersion against rel's. The result maps each template's path (e.g.
// "cloakroom/templates/deployment.yaml") to its output; partials and
// NOTES.txt are left out.
func Render(dir string, rel Release, valueFiles []string, set map[string]any) (map[string]string, error) {
	out, err := render(dir, rel, valueFiles, set)
	if err != nil {
		return nil, err
	}
	for name := range out {
		base := path.Base(name)
		if strings.HasPrefix(base, "_") || base == "NOTES.txt" {
			delete(out, name)
		}
	}
	return out, nil
}

// Notes renders the chart's NOTES.txt with the same inputs as Render.
func Notes(dir string, rel Release, valueFiles []string, set map[string]any) (string, error) {
	out, err := render(dir, rel, valueFiles, set)
	if err != nil {
		return "", err
	}
	for name, s := range out {
		if path.Base(name) == "NOTES.txt" {
			return s, nil
		}
	}
	return "", errors.New("the chart has no NOTES.txt")
}

func render(dir string, rel Release, valueFiles []string, set map[string]any) (map[string]string, error) {
	chrt, err := loader.Load(dir)
	if err != nil {
		return nil, fmt.Errorf("load chart: %w", err)
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if rel.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(rel.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kube version: %w", err)
		}
		caps.KubeVersion = *kv
	}
	if c := chrt.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart needs Kubernetes %s, rendering for %s", c, caps.KubeVersion.String())
	}
	vals := map[string]any{}
	for _, f := range valueFiles {
		v, err := chartutil.ReadValuesFile(f)
		if err != nil {
			return nil, fmt.Errorf("values %q: %w", f, err)
		}
		vals = merge(vals, v)
	}
	vals = merge(vals, set)
	top, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{
		Name:      rel.Name,
		Namespace: rel.Namespace,
		Revision:  1,
		IsInstall: true,
	}, caps)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	return engine.Engine{Strict: true}.Render(chrt, top)
}

// merge returns dst with src merged over it, as Helm merges value files.
func merge(dst, src map[string]any) map[string]any {
	out := maps.Clone(dst)
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := src[k]
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := out[k].(map[string]any); ok {
				out[k] = merge(dm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
