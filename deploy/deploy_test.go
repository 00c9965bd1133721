// Package deploy holds the deployment files of Cairn (Dockerfile, compose,
// Kubernetes manifests, Prometheus rules, Grafana dashboard) and the tests
// that keep them correct without running a container:
//
//   - every YAML and JSON file parses;
//   - every Kubernetes object decodes strictly into the API types;
//   - the objects agree with each other and with the processor's options;
//   - every metric named by the dashboard and the alerts is one the
//     processor registers and documents;
//   - the ConfigMap holds exactly the files of examples/;
//   - promtool checks and unit-tests the rules, when it is installed.
//
// `go test ./deploy/ -update` rewrites k8s/configmap.yaml from examples/.
package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	sigsyaml "sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite k8s/configmap.yaml from examples/")

const (
	root          = ".." // the repository, seen from deploy/
	examplesDir   = "../examples"
	configMapFile = "k8s/configmap.yaml"
	configMapName = "cairn-definitions"
)

// ---------------------------------------------------------------- parsing

// yamlDocs splits a multi-document YAML file into its non-empty documents.
func yamlDocs(t *testing.T, path string) []*yaml.Node {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []*yaml.Node
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Errorf("%s: document %d: %v", path, len(docs)+1, err)
			return docs
		}
		if len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
			continue
		}
		docs = append(docs, &n)
	}
	return docs
}

func filesUnder(t *testing.T, dir string, exts ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && slices.Contains(exts, filepath.Ext(p)) {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func TestYAMLAndJSONParse(t *testing.T) {
	ymls := filesUnder(t, ".", ".yml", ".yaml")
	if len(ymls) < 10 {
		t.Fatalf("found only %d YAML files under deploy/: %v", len(ymls), ymls)
	}
	for _, p := range ymls {
		if docs := yamlDocs(t, p); len(docs) == 0 {
			t.Errorf("%s: no YAML document", p)
		}
	}
	for _, p := range filesUnder(t, ".", ".json") {
		var v any
		if err := json.Unmarshal(readFile(t, p), &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---------------------------------------------------------------- Kubernetes

// serviceMonitor is the part of the Prometheus Operator's ServiceMonitor CRD
// (monitoring.coreos.com/v1) that the manifest uses; unknown fields fail.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector *struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector,omitempty"`
		Endpoints []struct {
			Port          string `json:"port,omitempty"`
			Path          string `json:"path,omitempty"`
			Scheme        string `json:"scheme,omitempty"`
			Interval      string `json:"interval,omitempty"`
			ScrapeTimeout string `json:"scrapeTimeout,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images,omitempty"`
}

// decodeStrict decodes JSON into v, failing on unknown fields (also in the
// case-sensitive sense Kubernetes uses, which encoding/json does not check),
// duplicate fields and trailing data.
func decodeStrict(doc []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the object")
	}
	fresh := reflect.New(reflect.TypeOf(v).Elem()).Interface()
	strict, err := kjson.UnmarshalStrict(doc, fresh, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		return err
	}
	return errors.Join(strict...)
}

// k8sObjects are the decoded manifests listed by kustomization.yaml.
type k8sObjects struct {
	sts     []*appsv1.StatefulSet
	svc     []*corev1.Service
	cm      []*corev1.ConfigMap
	pdb     []*policyv1.PodDisruptionBudget
	monitor []*serviceMonitor
}

func loadK8s(t *testing.T) k8sObjects {
	t.Helper()
	var k kustomization
	kj, err := sigsyaml.YAMLToJSONStrict(readFile(t, "k8s/kustomization.yaml"))
	if err != nil {
		t.Fatalf("k8s/kustomization.yaml: %v", err)
	}
	if err := decodeStrict(kj, &k); err != nil {
		t.Fatalf("k8s/kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("k8s/kustomization.yaml: apiVersion/kind %s/%s", k.APIVersion, k.Kind)
	}
	// The kustomization lists every manifest of the directory, and only them.
	var onDisk []string
	for _, p := range filesUnder(t, "k8s", ".yaml", ".yml") {
		if b := filepath.Base(p); b != "kustomization.yaml" {
			onDisk = append(onDisk, b)
		}
	}
	listed := slices.Clone(k.Resources)
	sort.Strings(listed)
	if !slices.Equal(listed, onDisk) {
		t.Errorf("kustomization.yaml resources %v, files in k8s/ %v", listed, onDisk)
	}

	var objs k8sObjects
	for _, res := range k.Resources {
		p := filepath.Join("k8s", res)
		for i, n := range yamlDocs(t, p) {
			where := fmt.Sprintf("%s (document %d)", p, i+1)
			raw, err := yaml.Marshal(n)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			doc, err := sigsyaml.YAMLToJSONStrict(raw)
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			var tm metav1.TypeMeta
			if err := json.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			var into any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 StatefulSet":
				o := &appsv1.StatefulSet{}
				objs.sts, into = append(objs.sts, o), o
			case "v1 Service":
				o := &corev1.Service{}
				objs.svc, into = append(objs.svc, o), o
			case "v1 ConfigMap":
				o := &corev1.ConfigMap{}
				objs.cm, into = append(objs.cm, o), o
			case "policy/v1 PodDisruptionBudget":
				o := &policyv1.PodDisruptionBudget{}
				objs.pdb, into = append(objs.pdb, o), o
			case "monitoring.coreos.com/v1 ServiceMonitor":
				o := &serviceMonitor{}
				objs.monitor, into = append(objs.monitor, o), o
			default:
				t.Errorf("%s: unexpected object %s %s", where, tm.APIVersion, tm.Kind)
				continue
			}
			if err := decodeStrict(doc, into); err != nil {
				t.Errorf("%s: %s does not decode strictly: %v", where, tm.Kind, err)
			}
		}
	}
	for what, n := range map[string]int{"StatefulSet": len(objs.sts), "Service": len(objs.svc),
		"ConfigMap": len(objs.cm), "PodDisruptionBudget": len(objs.pdb), "ServiceMonitor": len(objs.monitor)} {
		if n != 1 {
			t.Fatalf("want exactly one %s in k8s/, got %d", what, n)
		}
	}
	return objs
}

func TestK8sManifestsDecodeStrictly(t *testing.T) {
	loadK8s(t)
}

// TestDecodeStrictRejects makes sure the strict decoding really is strict.
func TestDecodeStrictRejects(t *testing.T) {
	for _, doc := range []string{
		`{"apiVersion":"v1","kind":"Service","spec":{"clusterIp":"None"}}`,     // wrong case
		`{"apiVersion":"v1","kind":"Service","spec":{"clusterIPs2":[]}}`,       // unknown
		`{"apiVersion":"v1","kind":"Service","kind":"Service","spec":{}}`,      // duplicate
		`{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":"x"}]}}`, // type
	} {
		if err := decodeStrict([]byte(doc), &corev1.Service{}); err == nil {
			t.Errorf("decodeStrict accepted %s", doc)
		}
	}
}

func matches(sel *metav1.LabelSelector, lbls map[string]string) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil || s.Empty() {
		return false
	}
	return s.Matches(labels.Set(lbls))
}

func envOf(c *corev1.Container) map[string]corev1.EnvVar {
	m := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// TestK8sObjectsAgree checks the references between the objects and the
// settings the issue asks for.
func TestK8sObjectsAgree(t *testing.T) {
	o := loadK8s(t)
	sts, svc, cm, pdb, mon := o.sts[0], o.svc[0], o.cm[0], o.pdb[0], o.monitor[0]
	pod := sts.Spec.Template

	if !matches(sts.Spec.Selector, pod.Labels) {
		t.Errorf("StatefulSet selector does not match its pod labels")
	}
	if sts.Spec.ServiceName != svc.Name {
		t.Errorf("StatefulSet serviceName %q, Service %q", sts.Spec.ServiceName, svc.Name)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service clusterIP %q, want None (headless)", svc.Spec.ClusterIP)
	}
	if !svc.Spec.PublishNotReadyAddresses {
		t.Errorf("Service must publish not-ready addresses so restoring pods are scraped")
	}
	if !matches(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector}, pod.Labels) {
		t.Errorf("Service selector %v does not match pod labels %v", svc.Spec.Selector, pod.Labels)
	}
	if !matches(pdb.Spec.Selector, pod.Labels) {
		t.Errorf("PodDisruptionBudget selector does not match pod labels")
	}
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.String() != "1" || pdb.Spec.MinAvailable != nil {
		t.Errorf("PodDisruptionBudget: want maxUnavailable 1 only, got max %v min %v", pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable)
	}
	if !matches(&mon.Spec.Selector, svc.Labels) {
		t.Errorf("ServiceMonitor selector does not match the Service's labels %v", svc.Labels)
	}
	if len(mon.Spec.Endpoints) == 0 {
		t.Fatalf("ServiceMonitor has no endpoints")
	}
	for _, ep := range mon.Spec.Endpoints {
		if !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == ep.Port }) {
			t.Errorf("ServiceMonitor endpoint port %q is not a Service port", ep.Port)
		}
		if ep.Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoint path %q, want /metrics", ep.Path)
		}
	}

	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g != 60 {
		t.Errorf("terminationGracePeriodSeconds %v, want 60", g)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	c := &pod.Spec.Containers[0]
	if !slices.Equal(c.Args, []string{"run"}) || len(c.Command) != 0 {
		t.Errorf("container command %v args %v, want the image's entrypoint with args [run]", c.Command, c.Args)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("container resources: want cpu and memory requests and a memory limit, got %v", c.Resources)
	}
	env := envOf(c)
	documented := documentedEnv(t)
	for name := range env {
		if strings.HasPrefix(name, "CAIRN_") && !documented[name] {
			t.Errorf("StatefulSet sets %s, which docs/operations.md does not list", name)
		}
	}
	if e := env["CAIRN_INSTANCE_ID"]; e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("CAIRN_INSTANCE_ID must come from the pod name (downward API), got %+v", e)
	}
	for _, name := range []string{"CAIRN_BROKERS", "CAIRN_APP_ID", "CAIRN_DEFINITIONS", "CAIRN_STATE_DIR", "CAIRN_HTTP"} {
		if env[name].Value == "" {
			t.Errorf("StatefulSet does not set %s", name)
		}
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m
	}
	// The state dir is on the PVC of the volumeClaimTemplate.
	if len(sts.Spec.VolumeClaimTemplates) != 1 {
		t.Fatalf("want one volumeClaimTemplate, got %d", len(sts.Spec.VolumeClaimTemplates))
	}
	pvc := sts.Spec.VolumeClaimTemplates[0]
	if m, ok := mounts[pvc.Name]; !ok || m.MountPath != env["CAIRN_STATE_DIR"].Value {
		t.Errorf("CAIRN_STATE_DIR %q is not the mount of the PVC %q (%+v)", env["CAIRN_STATE_DIR"].Value, pvc.Name, m)
	}
	if pvc.Spec.Resources.Requests.Storage().IsZero() {
		t.Errorf("PVC %q requests no storage", pvc.Name)
	}
	// The definitions dir is the ConfigMap.
	var cmVol *corev1.Volume
	for i := range pod.Spec.Volumes {
		if v := &pod.Spec.Volumes[i]; v.ConfigMap != nil {
			cmVol = v
		}
	}
	if cmVol == nil || cmVol.ConfigMap.Name != cm.Name {
		t.Errorf("no pod volume from ConfigMap %q", cm.Name)
	} else if m, ok := mounts[cmVol.Name]; !ok || m.MountPath != env["CAIRN_DEFINITIONS"].Value || !m.ReadOnly {
		t.Errorf("CAIRN_DEFINITIONS %q is not the read-only mount of ConfigMap volume %q (%+v)", env["CAIRN_DEFINITIONS"].Value, cmVol.Name, m)
	}
	// Mutations need the token of a mounted Secret, never a literal.
	if env["CAIRN_HTTP_TOKEN"].Value != "" || env["CAIRN_HTTP_TOKEN"].ValueFrom != nil {
		t.Errorf("StatefulSet sets CAIRN_HTTP_TOKEN; use CAIRN_HTTP_TOKEN_FILE from a Secret volume")
	}
	tokenFile := env["CAIRN_HTTP_TOKEN_FILE"].Value
	var secretOK bool
	for _, v := range pod.Spec.Volumes {
		m, mounted := mounts[v.Name]
		if v.Secret == nil || !mounted || !m.ReadOnly || v.Secret.Optional != nil && *v.Secret.Optional {
			continue
		}
		for _, it := range v.Secret.Items {
			secretOK = secretOK || filepath.Join(m.MountPath, it.Path) == tokenFile
		}
	}
	if tokenFile == "" || !secretOK {
		t.Errorf("CAIRN_HTTP_TOKEN_FILE %q is not a file of a required, read-only Secret volume", tokenFile)
	}
	// HTTP listens on all interfaces on the port the probes and Service use.
	host, port, ok := strings.Cut(env["CAIRN_HTTP"].Value, ":")
	if !ok || host != "0.0.0.0" {
		t.Errorf("CAIRN_HTTP %q: want 0.0.0.0:<port> so probes and Prometheus reach it", env["CAIRN_HTTP"].Value)
	}
	var httpPort *corev1.ContainerPort
	for i := range c.Ports {
		if c.Ports[i].Name == "http" {
			httpPort = &c.Ports[i]
		}
	}
	if httpPort == nil || strconv.Itoa(int(httpPort.ContainerPort)) != port {
		t.Errorf("container port \"http\" %+v does not match CAIRN_HTTP %q", httpPort, env["CAIRN_HTTP"].Value)
	}
	for _, sp := range svc.Spec.Ports {
		if sp.TargetPort.String() != "http" {
			t.Errorf("Service port %q targets %q, want the container port \"http\"", sp.Name, sp.TargetPort.String())
		}
	}
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != "http" {
			t.Errorf("%s: want an HTTP GET of %s on port http, got %+v", what, path, p)
		}
	}
	probe("readinessProbe", c.ReadinessProbe, "/readyz")
	probe("livenessProbe", c.LivenessProbe, "/healthz")
}

// ---------------------------------------------------------------- ConfigMap

// exampleFiles returns the definition files of examples/, as the processor
// reads them (operators/defs.LoadDir: *.yaml and *.yml, not recursive).
func exampleFiles(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(examplesDir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			out[n] = string(readFile(t, filepath.Join(examplesDir, n)))
		}
	}
	if len(out) == 0 {
		t.Fatal("no definitions in examples/")
	}
	return out
}

// renderConfigMap writes the ConfigMap of the definitions as block scalars,
// so that it stays readable and diffable.
func renderConfigMap(files map[string]string) string {
	var b strings.Builder
	b.WriteString(`# The example definitions (examples/), mounted at /etc/cairn.
# Generated by "go test ./deploy/ -update" and kept equal to examples/ by
# deploy/deploy_test.go. Replace it with your own definitions in a kustomize
# overlay (docs/deploy.md), then restart the StatefulSet to load them.
apiVersion: v1
kind: ConfigMap
metadata:
  name: ` + configMapName + `
  labels:
    app.kubernetes.io/name: cairn
data:
`)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := files[n]
		chomp := "" // exactly one final newline
		switch {
		case !strings.HasSuffix(v, "\n"):
			chomp = "-"
		case strings.HasSuffix(v, "\n\n"):
			chomp = "+"
		}
		indent := ""
		if strings.HasPrefix(v, " ") || strings.HasPrefix(v, "\n") {
			indent = "2" // relative to the keys' indentation of 2
		}
		fmt.Fprintf(&b, "  %s: |%s%s\n", n, indent, chomp)
		for _, line := range strings.Split(strings.TrimSuffix(v, "\n"), "\n") {
			if line == "" {
				b.WriteString("\n")
				continue
			}
			b.WriteString("    " + line + "\n")
		}
	}
	return b.String()
}

func TestConfigMapMatchesExamples(t *testing.T) {
	files := exampleFiles(t)
	if *update {
		if err := os.WriteFile(configMapFile, []byte(renderConfigMap(files)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o := loadK8s(t)
	cm := o.cm[0]
	if cm.Name != configMapName {
		t.Errorf("ConfigMap name %q, want %q", cm.Name, configMapName)
	}
	if len(cm.BinaryData) != 0 {
		t.Errorf("ConfigMap has binaryData")
	}
	for n, want := range files {
		got, ok := cm.Data[n]
		if !ok {
			t.Errorf("%s: examples/%s is missing; run go test ./deploy/ -update", configMapFile, n)
		} else if got != want {
			t.Errorf("%s: %s differs from examples/%s; run go test ./deploy/ -update", configMapFile, n, n)
		}
	}
	for n := range cm.Data {
		if _, ok := files[n]; !ok {
			t.Errorf("%s: %s is not in examples/; run go test ./deploy/ -update", configMapFile, n)
		}
	}
}

// TestRenderConfigMapRoundTrips covers the awkward cases of renderConfigMap.
func TestRenderConfigMapRoundTrips(t *testing.T) {
	files := map[string]string{
		"a.yaml": "kind: journey\nid: x\n",
		"b.yaml": "no final newline",
		"c.yaml": "two final newlines\n\n",
		"d.yaml": "  indented first line\n\n\tand a tab\n",
		"e.yaml": "\nleading blank line\n",
	}
	j, err := sigsyaml.YAMLToJSONStrict([]byte(renderConfigMap(files)))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := decodeStrict(j, &cm); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cm.Data, files) {
		t.Errorf("round trip:\n got %q\nwant %q", cm.Data, files)
	}
}

// ---------------------------------------------------------------- metrics

var (
	metricRef    = regexp.MustCompile(`cairn_[a-z_]+`)
	sourceMetric = regexp.MustCompile(`(?:Name:\s*|NewDesc\(\s*)"(cairn_[a-z0-9_]+)"`)
	docsMetric   = regexp.MustCompile("(?m)^\\|\\s*`(cairn_[a-z0-9_]+)")
	docsEnv      = regexp.MustCompile("`(CAIRN_[A-Z0-9_]+)`")
	metricSuffix = regexp.MustCompile(`_(bucket|sum|count)$`)
)

// sourceMetrics returns the metric names registered in the processor's Go
// sources (engine/metrics.go, cmd/processor/run.go and any other file).
func sourceMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			n := d.Name()
			if p != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "deploy" || n == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		for _, m := range sourceMetric.FindAllSubmatch(readFile(t, p), -1) {
			out[string(m[1])] = p
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"../engine/metrics.go", "../cmd/processor/run.go"} {
		found := false
		for _, p := range out {
			found = found || filepath.Clean(p) == filepath.Clean(must)
		}
		if !found {
			t.Errorf("no metric found in %s: has the registration moved?", must)
		}
	}
	return out
}

func docsMetrics(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range docsMetric.FindAllSubmatch(readFile(t, "../docs/operations.md"), -1) {
		out[string(m[1])] = true
	}
	if len(out) == 0 {
		t.Fatal("no metric table in docs/operations.md")
	}
	return out
}

func documentedEnv(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, m := range docsEnv.FindAllSubmatch(readFile(t, "../docs/operations.md"), -1) {
		out[string(m[1])] = true
	}
	if len(out) == 0 {
		t.Fatal("no CAIRN_* variables in docs/operations.md")
	}
	return out
}

// referencedMetrics returns the cairn_* series named in text, with
// histogram suffixes removed.
func referencedMetrics(text string) map[string]bool {
	out := map[string]bool{}
	for _, m := range metricRef.FindAllString(text, -1) {
		out[metricSuffix.ReplaceAllString(m, "")] = true
	}
	return out
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func loadAlerts(t *testing.T) alertRules {
	t.Helper()
	var r alertRules
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "prometheus/alerts.yml")))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("prometheus/alerts.yml: %v", err)
	}
	return r
}

func dashboardExprs(t *testing.T) []string {
	t.Helper()
	var d struct {
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Title      string `json:"title"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, "grafana/dashboards/cairn.json"), &d); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("dashboard: duplicate panel id %d", p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" || p.Type == "text" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("dashboard panel %q: datasource must be the ${datasource} variable", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("dashboard panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("dashboard panel %q has an empty query", p.Title)
			}
			exprs = append(exprs, tg.Expr)
		}
	}
	return exprs
}

// TestMetricsExist fails on any metric named by the dashboard, the alerts or
// the alerts' unit tests that the processor does not register and document.
func TestMetricsExist(t *testing.T) {
	src, docs := sourceMetrics(t), docsMetrics(t)
	for m := range src {
		if !docs[m] {
			t.Logf("note: %s is registered in %s but not listed in docs/operations.md", m, src[m])
		}
	}
	for m := range docs {
		if _, ok := src[m]; !ok {
			t.Logf("note: %s is listed in docs/operations.md but registered nowhere", m)
		}
	}

	var alertExprs []string
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			alertExprs = append(alertExprs, r.Expr)
		}
	}
	uses := map[string]string{
		"grafana/dashboards/cairn.json": strings.Join(dashboardExprs(t), "\n"),
		"prometheus/alerts.yml":         strings.Join(alertExprs, "\n"),
		// Unknown names there would make the unit tests vacuous.
		"prometheus/alerts_test.yml": string(readFile(t, "prometheus/alerts_test.yml")),
	}
	for file, text := range uses {
		refs := referencedMetrics(text)
		if len(refs) == 0 {
			t.Errorf("%s names no cairn_ metric", file)
		}
		for m := range refs {
			if _, ok := src[m]; !ok {
				t.Errorf("%s: %s is not registered by the processor (engine/metrics.go, cmd/processor/run.go)", file, m)
			}
			if !docs[m] {
				t.Errorf("%s: %s is not listed in docs/operations.md", file, m)
			}
		}
	}

	// What the dashboard must show.
	dash := referencedMetrics(uses["grafana/dashboards/cairn.json"])
	for _, m := range []string{"cairn_records_consumed_total", "cairn_records_processed_total",
		"cairn_partition_lag_records", "cairn_commit_duration_seconds", "cairn_transactions_aborted_total",
		"cairn_records_dlq_total", "cairn_restore_remaining_records", "cairn_timers_pending",
		"cairn_timers_fired_total", "cairn_outputs_total", "cairn_partition_clock_skew_seconds"} {
		if !dash[m] {
			t.Errorf("dashboard has no panel on %s", m)
		}
	}
	if !strings.Contains(uses["grafana/dashboards/cairn.json"], "histogram_quantile(") {
		t.Errorf("dashboard: commit latency should be a histogram_quantile")
	}
}

// ---------------------------------------------------------------- alerts

var wantAlerts = map[string]string{ // alert → the metric it watches
	"CairnLagGrowing":          "cairn_partition_lag_records",
	"CairnDLQRate":             "cairn_records_dlq_total",
	"CairnTransactionsAborted": "cairn_transactions_aborted_total",
	"CairnRestoreStuck":        "cairn_restore_remaining_records",
	"CairnPartitionClockSkew":  "cairn_partition_clock_skew_seconds",
}

func TestAlertRules(t *testing.T) {
	const runbook = "https://github.com/cairn-cjo/cairn/blob/main/docs/operations.md#"
	ops := string(readFile(t, "../docs/operations.md"))
	deployDoc := string(readFile(t, "../docs/deploy.md"))
	seen := map[string]bool{}
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			seen[r.Alert] = true
			metric, ok := wantAlerts[r.Alert]
			if !ok {
				t.Errorf("unexpected alert %s: add it to wantAlerts and docs/deploy.md", r.Alert)
				continue
			}
			if !referencedMetrics(r.Expr)[metric] {
				t.Errorf("%s: expr does not use %s: %s", r.Alert, metric, r.Expr)
			}
			if r.For == "" {
				t.Errorf("%s: no 'for' duration", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			anchor := strings.ToLower(r.Alert)
			if u := r.Annotations["runbook_url"]; u != runbook+anchor {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, u, runbook+anchor)
			}
			if !strings.Contains(deployDoc, "### "+r.Alert+"\n") {
				t.Errorf("docs/deploy.md has no section \"### %s\"", r.Alert)
			}
			if !hasHeading(ops, r.Alert) {
				t.Logf("note: docs/operations.md has no heading %q yet, so the runbook_url anchor #%s does not resolve", r.Alert, anchor)
			}
		}
	}
	for a := range wantAlerts {
		if !seen[a] {
			t.Errorf("alert %s is missing from prometheus/alerts.yml", a)
		}
	}
}

func hasHeading(md, title string) bool {
	for _, l := range strings.Split(md, "\n") {
		if strings.HasPrefix(l, "#") && strings.TrimSpace(strings.TrimLeft(l, "#")) == title {
			return true
		}
	}
	return false
}

// TestPromtool runs promtool on the rules and the config, and the rules' unit
// tests, when it is installed (Debian: apt-get install prometheus).
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH; install it with `apt-get install prometheus` (Debian) to check deploy/prometheus/")
	}
	for _, args := range [][]string{
		{"check", "rules", "alerts.yml"},
		{"check", "config", "prometheus.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// ---------------------------------------------------------------- compose

type composeService struct {
	Image   string
	Build   map[string]any
	Env     map[string]string
	Volumes []string
	Command []string
}

func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	var raw struct {
		Services map[string]map[string]any `yaml:"services"`
	}
	if err := yaml.Unmarshal(readFile(t, "docker-compose.yml"), &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]composeService{}
	for name, s := range raw.Services {
		var cs composeService
		cs.Image, _ = s["image"].(string)
		cs.Build, _ = s["build"].(map[string]any)
		cs.Env = map[string]string{}
		if env, ok := s["environment"].(map[string]any); ok {
			for k, v := range env {
				cs.Env[k] = fmt.Sprint(v)
			}
		} else if s["environment"] != nil {
			t.Errorf("compose service %s: write environment as a map", name)
		}
		for _, v := range asList(s["volumes"]) {
			cs.Volumes = append(cs.Volumes, fmt.Sprint(v))
		}
		for _, v := range asList(s["command"]) {
			cs.Command = append(cs.Command, fmt.Sprint(v))
		}
		out[name] = cs
	}
	return out
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

func TestCompose(t *testing.T) {
	svcs := loadCompose(t)

	kafka, ok := svcs["kafka"]
	if !ok {
		t.Fatal("no kafka service")
	}
	if !strings.HasPrefix(kafka.Image, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka", kafka.Image)
	} else if v := strings.TrimPrefix(kafka.Image, "apache/kafka:"); !versionAtLeast(v, 3, 9) {
		t.Errorf("kafka image %q, want 3.9.0 or later", kafka.Image)
	}
	for k, want := range map[string]string{
		"KAFKA_PROCESS_ROLES":                            "broker,controller", // KRaft, one node
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            "1",
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         "1",
	} {
		if kafka.Env[k] != want {
			t.Errorf("kafka %s = %q, want %q", k, kafka.Env[k], want)
		}
	}
	initTopics, ok := svcs["init-topics"]
	if !ok {
		t.Fatal("no init-topics service")
	}
	cmd := " " + strings.Join(initTopics.Command, " ") + " "
	for _, want := range []string{" --create ", " --topic events ", " --partitions 6 "} {
		if !strings.Contains(cmd, want) {
			t.Errorf("init-topics command %q lacks %q", cmd, want)
		}
	}

	// The Cairn instances: every service built from deploy/Dockerfile.
	documented := documentedEnv(t)
	var cairn []string
	ids, apps := map[string]bool{}, map[string]bool{}
	for name, s := range svcs {
		if s.Build == nil {
			continue
		}
		cairn = append(cairn, name)
		ctx, _ := s.Build["context"].(string)
		df, _ := s.Build["dockerfile"].(string)
		// Paths in the compose file are relative to deploy/, like this test.
		if !sameFile(filepath.Join(ctx, df), "Dockerfile") {
			t.Errorf("%s: builds %s, want deploy/Dockerfile", name, filepath.Join(ctx, df))
		}
		if filepath.Clean(ctx) != root {
			t.Errorf("%s: build context %q, want the repository root %q", name, ctx, root)
		}
		for k := range s.Env {
			if strings.HasPrefix(k, "CAIRN_") && !documented[k] {
				t.Errorf("%s sets %s, which docs/operations.md does not list", name, k)
			}
		}
		for k, want := range map[string]string{"CAIRN_BROKERS": "kafka:9092", "CAIRN_DEFINITIONS": "/etc/cairn",
			"CAIRN_STATE_DIR": "/var/lib/cairn", "CAIRN_HTTP": "0.0.0.0:8080"} {
			if s.Env[k] != want {
				t.Errorf("%s: %s = %q, want %q", name, k, s.Env[k], want)
			}
		}
		id := s.Env["CAIRN_INSTANCE_ID"]
		if id == "" || ids[id] {
			t.Errorf("%s: CAIRN_INSTANCE_ID %q must be set and unique", name, id)
		}
		ids[id] = true
		apps[s.Env["CAIRN_APP_ID"]] = true
		if !slices.Contains(s.Volumes, "../examples:/etc/cairn:ro") {
			t.Errorf("%s: examples/ is not mounted read-only at /etc/cairn: %v", name, s.Volumes)
		}
		if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/cairn") }) {
			t.Errorf("%s: no volume for the state dir: %v", name, s.Volumes)
		}
	}
	sort.Strings(cairn)
	if len(cairn) != 2 {
		t.Errorf("want two Cairn instances, got %v", cairn)
	}
	if len(apps) != 1 || apps[""] {
		t.Errorf("Cairn instances must share one CAIRN_APP_ID, got %v", apps)
	}

	// Prometheus scrapes every instance.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		if sc.JobName != "cairn" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				targets[tg] = true
			}
		}
	}
	for _, name := range cairn {
		if !targets[name+":8080"] {
			t.Errorf("prometheus.yml job cairn does not scrape %s:8080", name)
		}
	}

	// Every bind mount of a deploy/ file exists, and Grafana loads what is mounted.
	for name, s := range svcs {
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: mounts %s: %v", name, src, err)
				}
			}
		}
	}
	checkGrafana(t, svcs)
}

func checkGrafana(t *testing.T, svcs map[string]composeService) {
	g, ok := svcs["grafana"]
	if !ok {
		t.Fatal("no grafana service")
	}
	mounts := map[string]string{}
	for _, v := range g.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 {
			mounts[filepath.Clean(parts[0])] = parts[1]
		}
	}
	if mounts["grafana/provisioning"] != "/etc/grafana/provisioning" {
		t.Errorf("grafana: provisioning is not mounted at /etc/grafana/provisioning: %v", mounts)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(readFile(t, "grafana/provisioning/dashboards/cairn.yml"), &prov); err != nil {
		t.Fatal(err)
	}
	if len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != mounts["grafana/dashboards"] {
		t.Errorf("grafana dashboard provider %+v does not load the mounted grafana/dashboards (%q)", prov.Providers, mounts["grafana/dashboards"])
	}
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(readFile(t, "grafana/provisioning/datasources/prometheus.yml"), &ds); err != nil {
		t.Fatal(err)
	}
	if len(ds.Datasources) != 1 || ds.Datasources[0].Type != "prometheus" {
		t.Fatalf("want one prometheus datasource, got %+v", ds.Datasources)
	}
	host := strings.TrimPrefix(ds.Datasources[0].URL, "http://")
	host, _, _ = strings.Cut(host, ":")
	if _, ok := svcs[host]; !ok {
		t.Errorf("grafana datasource %q is not a compose service", ds.Datasources[0].URL)
	}
}

func sameFile(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	return err1 == nil && err2 == nil && (ma > major || ma == major && mi >= minor)
}

// ---------------------------------------------------------------- Dockerfile

func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	for _, want := range []string{
		"FROM golang:1.26 AS build",
		"CGO_ENABLED=0",
		`go build -trimpath -ldflags "-s -w" -o /out/processor ./cmd/processor`,
		"FROM gcr.io/distroless/static-debian12:nonroot",
		`VOLUME ["/var/lib/cairn"]`,
		"EXPOSE 8080",
		`ENTRYPOINT ["/processor"]`,
		`CMD ["run"]`,
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat("../cmd/processor/main.go"); err != nil {
		t.Errorf("the Dockerfile builds ./cmd/processor: %v", err)
	}
	// The build context is the repository root: what it copies must exist.
	for _, f := range []string{"../go.mod", "../go.sum"} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	ignore := string(readFile(t, "Dockerfile.dockerignore"))
	for _, must := range []string{"go.mod", "go.sum", "cmd", "engine", "operators", "internal", "state"} {
		for _, l := range strings.Split(ignore, "\n") {
			if strings.TrimSpace(l) == must {
				t.Errorf("Dockerfile.dockerignore excludes %s, which the build needs", must)
			}
		}
	}
}
