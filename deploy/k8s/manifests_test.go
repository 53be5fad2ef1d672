package k8s

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kustomizations are the directories kubectl apply -k takes.
var kustomizations = []string{"base", "overlays/dev", "overlays/external-redis"}

// binDir is where the xserver binaries live in the image (Dockerfile).
const binDir = "/opt/xserver/bin/"

// newObject returns an empty typed object for a manifest's apiVersion and
// kind; nil for a kind the manifests should not contain.
func newObject(apiVersion, kind string) any {
	switch apiVersion + " " + kind {
	case "apps/v1 Deployment":
		return new(appsv1.Deployment)
	case "v1 Service":
		return new(corev1.Service)
	case "v1 ConfigMap":
		return new(corev1.ConfigMap)
	case "v1 Secret":
		return new(corev1.Secret)
	case "policy/v1 PodDisruptionBudget":
		return new(policyv1.PodDisruptionBudget)
	}
	return nil
}

// decodeStrict decodes one JSON manifest into its k8s.io/api type,
// rejecting unknown fields. allowPatch accepts a strategic-merge
// "$patch" directive (overlay patches).
func decodeStrict(doc []byte, allowPatch bool) (any, error) {
	var head map[string]any
	if err := json.Unmarshal(doc, &head); err != nil {
		return nil, err
	}
	if _, ok := head["$patch"]; ok {
		if !allowPatch {
			return nil, fmt.Errorf("$patch outside an overlay patch")
		}
		delete(head, "$patch")
		doc, _ = json.Marshal(head)
	}
	apiVersion, _ := head["apiVersion"].(string)
	kind, _ := head["kind"].(string)
	obj := newObject(apiVersion, kind)
	if obj == nil {
		return nil, fmt.Errorf("unexpected kind %q %q", apiVersion, kind)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", apiVersion, kind, err)
	}
	return obj, nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// documents splits a YAML file into its documents, as JSON.
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i, part := range docSep.Split(string(b), -1) {
		if strings.TrimSpace(stripComments(part)) == "" {
			continue
		}
		j, err := yaml.YAMLToJSONStrict([]byte(part))
		if err != nil {
			t.Fatalf("%s: document %d: %v", path, i+1, err)
		}
		out = append(out, j)
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// readKustomization decodes dir/kustomization.yaml strictly.
func readKustomization(t *testing.T, dir string) types.Kustomization {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k types.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	return k
}

// TestFilesDecodeStrictly: every manifest and patch decodes into its
// k8s.io/api type with no unknown field, and every kustomization is a
// valid Kustomization.
func TestFilesDecodeStrictly(t *testing.T) {
	n := 0
	for _, dir := range kustomizations {
		readKustomization(t, dir)
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			for i, doc := range documents(t, f) {
				if _, err := decodeStrict(doc, dir != "base"); err != nil {
					t.Errorf("%s: document %d: %v", f, i+1, err)
				}
				n++
			}
		}
	}
	if n < 10 {
		t.Fatalf("decoded only %d manifests", n)
	}
}

// TestStrictDecodingRejectsTypos: the check above can fail.
func TestStrictDecodingRejectsTypos(t *testing.T) {
	for _, doc := range []string{
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"replica":2}}`,
		`{"apiVersion":"apps/v1","kind":"Deployment","spec":{"template":{"spec":{"containers":[{"name":"x","imagee":"x"}]}}}}`,
		`{"apiVersion":"v1","kind":"Service","spec":{"ports":[{"port":"http"}]}}`,
		`{"apiVersion":"v1","kind":"Pod"}`,
	} {
		if _, err := decodeStrict([]byte(doc), false); err == nil {
			t.Errorf("accepted %s", doc)
		}
	}
}

// TestKustomizationsListEveryFile: each kustomization names every YAML
// file next to it (a forgotten file is never applied), and every file it
// names exists.
func TestKustomizationsListEveryFile(t *testing.T) {
	for _, dir := range kustomizations {
		k := readKustomization(t, dir)
		listed := map[string]bool{}
		for _, r := range k.Resources {
			if info, err := os.Stat(filepath.Join(dir, r)); err != nil {
				t.Errorf("%s: resource %s: %v", dir, r, err)
			} else if !info.IsDir() {
				listed[r] = true
			}
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				listed[p.Path] = true
			}
		}
		for _, g := range k.SecretGenerator {
			for _, f := range append(g.EnvSources, g.FileSources...) {
				listed[f] = true
			}
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, f := range files {
			name := filepath.Base(f)
			if name != "kustomization.yaml" && !listed[name] {
				t.Errorf("%s/%s is not listed in %s/kustomization.yaml", dir, name, dir)
			}
			delete(listed, name)
		}
		for name := range listed {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil && !strings.HasSuffix(name, ".env") {
				t.Errorf("%s/kustomization.yaml lists %s, which does not exist", dir, name)
			}
		}
	}
}

// rendered is one kustomization's output, decoded.
type rendered struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
}

// render runs kustomize (krusty, the library kubectl apply -k is built
// on) over an in-memory copy of this directory, with a secret.env for the
// dev overlay, and decodes every resource strictly.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	mem := filesys.MakeFsInMemory()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join("/k8s", path), b)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := mem.WriteFile("/k8s/overlays/dev/secret.env", []byte("secret=test-only\n")); err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, filepath.Join("/k8s", dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out := rendered{map[string]*appsv1.Deployment{}, map[string]*corev1.Service{}, map[string]*corev1.ConfigMap{}, map[string]*corev1.Secret{}}
	for _, r := range resMap.Resources() {
		j, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, err := decodeStrict(j, false)
		if err != nil {
			t.Errorf("%s: rendered %s: %v", dir, r.GetName(), err)
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			out.deployments[o.Name] = o
		case *corev1.Service:
			out.services[o.Name] = o
		case *corev1.ConfigMap:
			out.configMaps[o.Name] = o
		case *corev1.Secret:
			out.secrets[o.Name] = o
		}
	}
	return out
}

// TestRendered: every kustomization renders, and what it renders makes a
// working cluster: each xserver container runs a real binary with real
// flags and XSERVER_ variables, gets the secret from a Secret, has
// resources and probes on its own ports; two mgrservers are ready on
// /healthz; gateways drain within their grace period behind a Service
// whose ports are theirs.
func TestRendered(t *testing.T) {
	flags := binaryFlags(t)
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			r := render(t, dir)
			for _, name := range []string{"mgrserver", "gateway", "login", "lobby", "match"} {
				if r.deployments[name] == nil {
					t.Fatalf("no %s Deployment", name)
				}
			}
			for _, d := range r.deployments {
				checkDeployment(t, r, d, flags)
			}
			for _, s := range r.services {
				checkService(t, r, s)
			}

			mgr := r.deployments["mgrserver"]
			if mgr.Spec.Replicas == nil || *mgr.Spec.Replicas != 2 {
				t.Errorf("mgrserver replicas %v, want 2", mgr.Spec.Replicas)
			}
			if p := mgr.Spec.Template.Spec.Containers[0].ReadinessProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/healthz" {
				t.Errorf("mgrserver readiness is not GET /healthz: %+v", p)
			}

			gw := r.deployments["gateway"]
			c := gw.Spec.Template.Spec.Containers[0]
			if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
				t.Fatalf("gateway has no preStop wait: %+v", c.Lifecycle)
			}
			grace := gw.Spec.Template.Spec.TerminationGracePeriodSeconds
			const drainBudget = 15 // seconds for the drain after SIGTERM; it takes well under one
			if grace == nil || *grace < c.Lifecycle.PreStop.Sleep.Seconds+drainBudget {
				t.Errorf("gateway termination grace (%v) does not cover preStop %d s + drain %d s", fmtSeconds(grace), c.Lifecycle.PreStop.Sleep.Seconds, drainBudget)
			}
			if s := r.services["gateway"]; s == nil || s.Spec.Type != corev1.ServiceTypeLoadBalancer {
				t.Errorf("gateways are not behind a LoadBalancer Service")
			}

			switch dir {
			case "overlays/dev":
				if len(r.secrets) != 1 {
					t.Errorf("dev renders %d Secrets, want the generated one", len(r.secrets))
				}
			case "overlays/external-redis":
				if r.deployments["redis"] != nil || r.services["redis"] != nil {
					t.Error("the in-cluster Redis is still there")
				}
				if got := r.configMaps["xserver"].Data["XSERVER_REDIS"]; got == "redis:6379" {
					t.Errorf("XSERVER_REDIS still %q", got)
				}
			}
		})
	}
}

func checkDeployment(t *testing.T, r rendered, d *appsv1.Deployment, flags map[string]map[string]bool) {
	t.Helper()
	spec := d.Spec.Template.Spec
	if !labelsMatch(d.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
		t.Errorf("%s: selector %v does not select its pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
	}
	for _, c := range spec.Containers {
		where := d.Name + "/" + c.Name
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: set cpu and memory requests and a memory limit", where)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s: needs readiness and liveness probes", where)
		}
		for _, p := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if p != nil {
				checkProbePort(t, where, c, p)
			}
		}
		if c.Image != "xserver:dev" && !strings.HasPrefix(c.Image, "xserver") {
			continue // not an xserver binary (Redis)
		}
		bin, ok := strings.CutPrefix(strings.Join(c.Command, " "), binDir)
		if !ok || flags[bin] == nil {
			t.Errorf("%s: command %q is not one of the image's binaries %v", where, c.Command, slices.Sorted(mapKeys(flags)))
			continue
		}
		defined := map[string]bool{}
		secretFromSecret := false
		for _, e := range c.Env {
			defined[e.Name] = true
			if e.Name == "XSERVER_SECRET" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				secretFromSecret = true
				if len(r.secrets) > 0 && r.secrets[e.ValueFrom.SecretKeyRef.Name] == nil {
					t.Errorf("%s: XSERVER_SECRET refers to Secret %q, which is not rendered", where, e.ValueFrom.SecretKeyRef.Name)
				}
			}
			checkEnv(t, where, bin, e.Name, flags)
		}
		if !secretFromSecret {
			t.Errorf("%s: XSERVER_SECRET must come from a Secret", where)
		}
		for _, from := range c.EnvFrom {
			if from.ConfigMapRef == nil {
				continue
			}
			cm := r.configMaps[from.ConfigMapRef.Name]
			if cm == nil {
				t.Errorf("%s: envFrom ConfigMap %q is not rendered", where, from.ConfigMapRef.Name)
				continue
			}
			for k := range cm.Data {
				defined[k] = true
				checkEnv(t, where, bin, k, flags)
			}
		}
		for _, a := range c.Args {
			if strings.HasPrefix(a, "-") {
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				if !flags[bin][name] {
					t.Errorf("%s: %s has no flag %s", where, bin, a)
				}
			}
			for _, m := range regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`).FindAllStringSubmatch(a, -1) {
				if !defined[m[1]] {
					t.Errorf("%s: argument %q refers to $(%s), which the container does not define", where, a, m[1])
				}
			}
		}
		// The HTTP probes reach the port the binary serves its admin or
		// HTTP listener on.
		if p := c.ReadinessProbe; p != nil && p.HTTPGet != nil {
			port := containerPort(c, p.HTTPGet.Port.String())
			found := false
			for _, a := range c.Args {
				if _, ps, err := net.SplitHostPort(a); err == nil && ps == strconv.Itoa(int(port)) {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: readiness probes port %d, which no listen argument uses", where, port)
			}
		}
	}
}

// checkEnv: an XSERVER_ variable is a flag of bin.
func checkEnv(t *testing.T, where, bin, name string, flags map[string]map[string]bool) {
	t.Helper()
	flag, ok := strings.CutPrefix(name, "XSERVER_")
	if !ok {
		return
	}
	flag = strings.ToLower(strings.ReplaceAll(flag, "_", "-"))
	if !flags[bin][flag] {
		t.Errorf("%s: %s is not a variable of %s (it has no -%s)", where, name, bin, flag)
	}
}

func checkProbePort(t *testing.T, where string, c corev1.Container, p *corev1.Probe) {
	t.Helper()
	switch {
	case p.HTTPGet != nil:
		if containerPort(c, p.HTTPGet.Port.String()) == 0 {
			t.Errorf("%s: probe port %s is not a container port", where, p.HTTPGet.Port.String())
		}
	case p.TCPSocket != nil:
		if containerPort(c, p.TCPSocket.Port.String()) == 0 {
			t.Errorf("%s: probe port %s is not a container port", where, p.TCPSocket.Port.String())
		}
	}
}

// containerPort resolves a port name or number of c; 0 if it has none.
func containerPort(c corev1.Container, port string) int32 {
	for _, p := range c.Ports {
		if p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port {
			return p.ContainerPort
		}
	}
	return 0
}

// checkService: the Service selects a Deployment's pods, and each port
// targets one of their container ports. A gateway's Service port must be
// the container port itself: the login service hands out the port the
// gateway listens on.
func checkService(t *testing.T, r rendered, s *corev1.Service) {
	t.Helper()
	var target *appsv1.Deployment
	for _, d := range r.deployments {
		if len(s.Spec.Selector) > 0 && labelsMatch(s.Spec.Selector, d.Spec.Template.Labels) {
			target = d
		}
	}
	if target == nil {
		t.Errorf("Service %s selects no Deployment's pods", s.Name)
		return
	}
	c := target.Spec.Template.Spec.Containers[0]
	for _, p := range s.Spec.Ports {
		cp := containerPort(c, p.TargetPort.String())
		if cp == 0 {
			t.Errorf("Service %s port %s targets %s, not a port of %s", s.Name, p.Name, p.TargetPort.String(), target.Name)
		}
		if s.Name == "gateway" && cp != p.Port {
			t.Errorf("Service gateway publishes %d for container port %d: players would be handed %d", p.Port, cp, cp)
		}
	}
}

func fmtSeconds(p *int64) string {
	if p == nil {
		return "unset: 30 s"
	}
	return fmt.Sprintf("%d s", *p)
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func mapKeys[M ~map[K]V, K comparable, V any](m M) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var (
	flagsOnce sync.Once
	flagsErr  error
	flagsOut  map[string]map[string]bool
)

// binaryFlags builds the binaries the manifests run from this checkout
// and reads each one's flags from its -h.
func binaryFlags(t *testing.T) map[string]map[string]bool {
	t.Helper()
	flagsOnce.Do(func() { flagsOut, flagsErr = buildAndList(t.TempDir()) })
	if flagsErr != nil {
		t.Fatal(flagsErr)
	}
	return flagsOut
}

func buildAndList(tmp string) (map[string]map[string]bool, error) {
	pkgs := map[string]string{
		"mgrserver": "./cmd/mgrserver", "gateway": "./cmd/gateway",
		"login": "./examples/login", "lobby": "./examples/lobby", "match": "./examples/match",
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	args := []string{"build", "-o", tmp + string(filepath.Separator)}
	for _, p := range pkgs {
		args = append(args, p)
	}
	cmd := exec.Command(goTool(), args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	flag := regexp.MustCompile(`^  -([a-z0-9-]+)`)
	all := map[string]map[string]bool{}
	for bin := range pkgs {
		out, err := exec.Command(filepath.Join(tmp, bin), "-h").Output()
		if err != nil {
			return nil, fmt.Errorf("%s -h: %v", bin, err)
		}
		all[bin] = map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if m := flag.FindStringSubmatch(sc.Text()); m != nil {
				all[bin][m[1]] = true
			}
		}
		if !all[bin]["secret"] || !all[bin]["redis"] {
			return nil, fmt.Errorf("%s -h lists no -secret or -redis:\n%s", bin, out)
		}
	}
	return all, nil
}

// goTool is the go command that runs this test.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
