// Package deploy checks that the deployment files in deploy/ agree with the
// code: every environment variable they set is one the configuration reads
// (the names settings.Variables lists), the ports are the server's, the probes
// hit routes the API serves, the images and replica counts agree, the
// ConfigMap's model and settings load, and the image builds the binary
// statically and runs it as a non-root user.
package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ourway/auth"
	"github.com/ourway/auth/api"
	"github.com/ourway/auth/settings"
)

const (
	image = "auth-server:latest"
	// nonrootUID is the nonroot user of the distroless base image.
	nonrootUID = 65532
)

// root is the module root.
func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func read(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(t), rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// configNames is every environment variable the configuration reads: the
// list settings.Variables derives from the sections' tags.
func configNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, v := range settings.Variables() {
		names[v.Name] = true
	}
	if len(names) < 40 {
		t.Fatalf("settings.Variables lists %d variables only: %v", len(names), names)
	}
	// Every one is asked for by Load.
	asked := map[string]bool{}
	if _, err := settings.Load(func(name string) string { asked[name] = true; return "" }); err != nil {
		t.Fatalf("the built-in configuration does not load: %v", err)
	}
	for n := range names {
		if !asked[n] {
			t.Errorf("settings.Load does not read %s, which settings.Variables lists", n)
		}
	}
	return names
}

// defaults is the built-in configuration.
func defaults(t *testing.T) settings.Config {
	t.Helper()
	cfg, err := settings.Load(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// Compose files.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   yaml.Node         `yaml:"depends_on"`
}

func loadCompose(t *testing.T, rel string) composeFile {
	t.Helper()
	var f composeFile
	if err := yaml.Unmarshal(read(t, rel), &f); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	if len(f.Services) == 0 {
		t.Fatalf("%s: no services", rel)
	}
	return f
}

// authServices are the services that run the auth-server image, and
// whether each serves (rather than migrates).
func (f composeFile) authServices() map[string]composeService {
	out := map[string]composeService{}
	for name, s := range f.Services {
		if s.Image == image || (s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile") {
			out[name] = s
		}
	}
	return out
}

func (s composeService) serves() bool {
	return len(s.Command) == 0 || s.Command[0] == "serve"
}

// Kubernetes manifests.

type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       yaml.Node         `yaml:"spec"`
}

func (o k8sObject) decodeSpec(v any) error { return o.Spec.Decode(v) }

type podSpec struct {
	SecurityContext struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
		RunAsUser    int  `yaml:"runAsUser"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name      string `yaml:"name"`
		ConfigMap struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type container struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

func (c container) env(name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

type workload struct {
	Replicas int `yaml:"replicas"`
	Template struct {
		Spec podSpec `yaml:"spec"`
	} `yaml:"template"`
}

type manifests struct {
	byKind map[string]k8sObject
}

func loadManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root(t), "deploy", "kubernetes", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Kubernetes manifests: %v", err)
	}
	m := manifests{byKind: map[string]k8sObject{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var o k8sObject
			if err := dec.Decode(&o); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if _, dup := m.byKind[o.Kind]; dup {
				t.Fatalf("%s: a second %s", f, o.Kind)
			}
			m.byKind[o.Kind] = o
		}
	}
	return m
}

func (m manifests) get(t *testing.T, kind string) k8sObject {
	t.Helper()
	o, ok := m.byKind[kind]
	if !ok {
		t.Fatalf("no %s manifest", kind)
	}
	return o
}

func (m manifests) workload(t *testing.T, kind string) workload {
	t.Helper()
	var w workload
	o := m.get(t, kind)
	if err := o.Spec.Decode(&w); err != nil {
		t.Fatalf("%s spec: %v", kind, err)
	}
	if len(w.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", kind, len(w.Template.Spec.Containers))
	}
	return w
}

// systemd unit and env file.

// unitEnv returns the Environment= settings of the unit and its other
// Key=Value lines.
func unitEnv(t *testing.T) (env map[string]string, keys map[string][]string) {
	t.Helper()
	env, keys = map[string]string{}, map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(read(t, "deploy/auth-server.service")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("auth-server.service: %q is not Key=Value", line)
		}
		if k == "Environment" {
			name, value, ok := strings.Cut(v, "=")
			if !ok {
				t.Fatalf("auth-server.service: %q", line)
			}
			env[name] = value
			continue
		}
		keys[k] = append(keys[k], v)
	}
	return env, keys
}

// envFileNames lists the variables of the example env file, set or
// commented out.
func envFileNames(t *testing.T) []string {
	t.Helper()
	var out []string
	re := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)
	for _, line := range strings.Split(string(read(t, "deploy/auth-server.env.example")), "\n") {
		if m := re.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatal("auth-server.env.example names no variable")
	}
	return out
}

// Dockerfile.

type dockerStage struct {
	from  string
	lines []string // instructions, continuation lines joined
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		ins := strings.TrimSpace(cur.String())
		cur.Reset()
		if ins == "" {
			return
		}
		if f, ok := strings.CutPrefix(ins, "FROM "); ok {
			stages = append(stages, dockerStage{from: f})
			return
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %q before FROM", ins)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, ins)
	}
	for _, line := range strings.Split(string(read(t, "deploy/Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	return stages
}

// dockerEnv parses the ENV instructions of a stage (KEY=VALUE pairs).
func (s dockerStage) env() map[string]string {
	out := map[string]string{}
	for _, l := range s.lines {
		if rest, ok := strings.CutPrefix(l, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					out[k] = v
				}
			}
		}
	}
	return out
}

func (s dockerStage) find(prefix string) []string {
	var out []string
	for _, l := range s.lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// The tests.

func TestVariablesAreReadByTheCode(t *testing.T) {
	known := configNames(t)
	check := func(where string, names ...string) {
		t.Helper()
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s sets %s, which the configuration does not read", where, n)
			}
		}
	}
	for _, rel := range []string{"deploy/docker-compose.yml", "deploy/docker-compose.redis.yml"} {
		for name, s := range loadCompose(t, rel).authServices() {
			for k := range s.Environment {
				check(rel+" service "+name, k)
			}
		}
	}
	m := loadManifests(t)
	for _, kind := range []string{"Deployment", "Job"} {
		for _, e := range m.workload(t, kind).Template.Spec.Containers[0].Env {
			check("the "+kind, e.Name)
		}
	}
	for k := range m.get(t, "Secret").StringData {
		check("the example Secret", k)
	}
	env, _ := unitEnv(t)
	for k := range env {
		check("auth-server.service", k)
	}
	check("auth-server.env.example", envFileNames(t)...)
	for _, s := range dockerStages(t)[1:] {
		for k := range s.env() {
			check("the Dockerfile", k)
		}
	}
	// The configuration table (docs/configuration.md) names variables the code reads.
	re := regexp.MustCompile("(?m)^\\| `([A-Z][A-Z0-9_]*)`(?: / `([A-Z][A-Z0-9_]*)`)? \\|")
	rows := re.FindAllStringSubmatch(string(read(t, "docs/configuration.md")), -1)
	if len(rows) < 30 {
		t.Fatalf("configuration table: %d rows found", len(rows))
	}
	var documented []string
	for _, r := range rows {
		for _, n := range r[1:] {
			if n != "" {
				documented = append(documented, n)
			}
		}
	}
	check("the configuration table", documented...)
	for _, n := range []string{"AUTH_WATCHER_REDIS_URL", "AUTH_WATCHER_CHANNEL", "AUTH_SYNC_INTERVAL"} {
		if !slices.Contains(documented, n) {
			t.Errorf("the configuration table has no row for %s", n)
		}
	}
	// And every variable the code reads has its row.
	for _, v := range settings.Variables() {
		if !slices.Contains(documented, v.Name) {
			t.Errorf("the configuration table has no row for %s", v.Name)
		}
	}
}

func TestPortsAgree(t *testing.T) {
	port := defaults(t).Server.Port
	if port != 4000 {
		t.Fatalf("default SERVER_PORT = %d; the deployment files assume 4000", port)
	}
	p := strconv.Itoa(port)

	stages := dockerStages(t)
	final := stages[len(stages)-1]
	if got := final.env()["SERVER_PORT"]; got != p {
		t.Errorf("Dockerfile ENV SERVER_PORT = %q, want %s", got, p)
	}
	if got := final.find("EXPOSE "); !slices.Equal(got, []string{"EXPOSE " + p}) {
		t.Errorf("Dockerfile EXPOSE = %q, want %s", got, p)
	}

	single := loadCompose(t, "deploy/docker-compose.yml")
	for name, s := range single.authServices() {
		if got := s.Environment["SERVER_PORT"]; got != p {
			t.Errorf("docker-compose.yml %s: SERVER_PORT = %q, want %s", name, got, p)
		}
		if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":"+p) {
			t.Errorf("docker-compose.yml %s: ports %q, want one mapping to container port %s", name, s.Ports, p)
		}
	}

	multi := loadCompose(t, "deploy/docker-compose.redis.yml")
	nginx := string(read(t, "deploy/nginx.conf"))
	var upstream []string
	for _, m := range regexp.MustCompile(`(?m)^\s*server\s+([^\s;]+);`).FindAllStringSubmatch(nginx, -1) {
		upstream = append(upstream, m[1])
	}
	var servers []string
	for name, s := range multi.authServices() {
		if got := s.Environment["SERVER_PORT"]; got != p {
			t.Errorf("docker-compose.redis.yml %s: SERVER_PORT = %q, want %s", name, got, p)
		}
		if s.serves() {
			servers = append(servers, name+":"+p)
		}
	}
	sort.Strings(servers)
	sort.Strings(upstream)
	if len(servers) < 2 || !slices.Equal(servers, upstream) {
		t.Errorf("nginx upstream servers %q, want the serving replicas %q", upstream, servers)
	}
	lb, ok := multi.Services["lb"]
	if !ok {
		t.Fatal("docker-compose.redis.yml: no lb service")
	}
	m := regexp.MustCompile(`(?m)^\s*listen\s+(\d+);`).FindStringSubmatch(nginx)
	if m == nil || len(lb.Ports) != 1 || !strings.HasSuffix(lb.Ports[0], ":"+m[1]) {
		t.Errorf("lb ports %q do not reach nginx's listen port %v", lb.Ports, m)
	}

	k := loadManifests(t)
	c := k.workload(t, "Deployment").Template.Spec.Containers[0]
	if v, _ := c.env("SERVER_PORT"); v != p {
		t.Errorf("Deployment SERVER_PORT = %q, want %s", v, p)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port || c.Ports[0].Name != "http" {
		t.Errorf("Deployment container ports %+v, want http: %d", c.Ports, port)
	}
	var svc struct {
		Ports []struct {
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"`
		} `yaml:"ports"`
	}
	if err := k.get(t, "Service").decodeSpec(&svc); err != nil {
		t.Fatal(err)
	}
	if len(svc.Ports) != 1 || svc.Ports[0].TargetPort != "http" {
		t.Errorf("Service ports %+v, want one with targetPort http", svc.Ports)
	}

	env, _ := unitEnv(t)
	if got := env["SERVER_PORT"]; got != p {
		t.Errorf("auth-server.service SERVER_PORT = %q, want %s", got, p)
	}
}

func TestProbesHitTheAPI(t *testing.T) {
	c := loadManifests(t).workload(t, "Deployment").Template.Spec.Containers[0]
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"livenessProbe", c.LivenessProbe, "/health"}, {"readinessProbe", c.ReadinessProbe, "/ready"}} {
		if pr.p == nil {
			t.Errorf("Deployment: no %s", pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path {
			t.Errorf("Deployment %s path %q, want %s", pr.name, pr.p.HTTPGet.Path, pr.path)
		}
		if port := pr.p.HTTPGet.Port.Value; port != "http" && port != strconv.Itoa(defaults(t).Server.Port) {
			t.Errorf("Deployment %s port %q, want http", pr.name, port)
		}
	}
	// The API serves both: /health always, /ready as its readiness check
	// says.
	for _, tc := range []struct {
		ready error
		path  string
		want  int
	}{
		{nil, "/health", 200},
		{nil, "/ready", 200},
		{errors.New("database down"), "/health", 200},
		{errors.New("database down"), "/ready", 503},
	} {
		ready := tc.ready
		srv := api.New(api.Config{}, api.Deps{
			Ready:  func(context.Context) error { return ready },
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != tc.want {
			t.Errorf("GET %s with readiness error %v: %d, want %d", tc.path, tc.ready, rec.Code, tc.want)
		}
	}
}

func TestImagesAndReplicas(t *testing.T) {
	for _, rel := range []string{"deploy/docker-compose.yml", "deploy/docker-compose.redis.yml"} {
		f := loadCompose(t, rel)
		services := f.authServices()
		if len(services) == 0 {
			t.Errorf("%s: no auth-server service", rel)
		}
		for name, s := range services {
			if s.Image != image {
				t.Errorf("%s %s: image %q, want %s", rel, name, s.Image, image)
			}
			if s.Build == nil || s.Build.Context != ".." || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("%s %s: build %+v, want context .. and deploy/Dockerfile", rel, name, s.Build)
			}
		}
	}
	m := loadManifests(t)
	dep := m.workload(t, "Deployment")
	job := m.workload(t, "Job")
	for kind, w := range map[string]workload{"Deployment": dep, "Job": job} {
		c := w.Template.Spec.Containers[0]
		if c.Image != image {
			t.Errorf("%s image %q, want %s", kind, c.Image, image)
		}
		sc := w.Template.Spec.SecurityContext
		if !sc.RunAsNonRoot || sc.RunAsUser != nonrootUID {
			t.Errorf("%s securityContext %+v, want runAsNonRoot and user %d (the image's nonroot)", kind, sc, nonrootUID)
		}
	}
	if dep.Replicas != 3 {
		t.Errorf("Deployment replicas = %d, want 3", dep.Replicas)
	}
	var hpa struct {
		MinReplicas    int `yaml:"minReplicas"`
		MaxReplicas    int `yaml:"maxReplicas"`
		ScaleTargetRef struct {
			Kind string `yaml:"kind"`
			Name string `yaml:"name"`
		} `yaml:"scaleTargetRef"`
	}
	if err := m.get(t, "HorizontalPodAutoscaler").decodeSpec(&hpa); err != nil {
		t.Fatal(err)
	}
	depName := m.get(t, "Deployment").Metadata.Name
	if hpa.ScaleTargetRef.Kind != "Deployment" || hpa.ScaleTargetRef.Name != depName || hpa.MinReplicas != dep.Replicas || hpa.MaxReplicas < hpa.MinReplicas {
		t.Errorf("HPA %+v does not scale Deployment %s from its %d replicas", hpa, depName, dep.Replicas)
	}
	var pdb struct {
		MinAvailable int `yaml:"minAvailable"`
	}
	if err := m.get(t, "PodDisruptionBudget").decodeSpec(&pdb); err != nil {
		t.Fatal(err)
	}
	if pdb.MinAvailable < 1 || pdb.MinAvailable >= dep.Replicas {
		t.Errorf("PodDisruptionBudget minAvailable %d with %d replicas: no pod could ever be evicted, or none must stay", pdb.MinAvailable, dep.Replicas)
	}
	// While Redis is down each replica allows 1/N of a rate limit: N is
	// the number of replicas that share it.
	c := dep.Template.Spec.Containers[0]
	if v, _ := c.env("AUTH_RATE_LIMIT_REPLICAS"); v != strconv.Itoa(dep.Replicas) {
		t.Errorf("Deployment AUTH_RATE_LIMIT_REPLICAS = %q, want %d", v, dep.Replicas)
	}
	multi := loadCompose(t, "deploy/docker-compose.redis.yml")
	serving := 0
	for _, s := range multi.authServices() {
		if s.serves() {
			serving++
		}
	}
	for name, s := range multi.authServices() {
		if s.serves() {
			if got := s.Environment["AUTH_RATE_LIMIT_REPLICAS"]; got != strconv.Itoa(serving) {
				t.Errorf("docker-compose.redis.yml %s: AUTH_RATE_LIMIT_REPLICAS = %q, want %d", name, got, serving)
			}
		}
	}
}

// TestSeveralReplicasShareOneDatabaseAndRedis: the multi-replica setups run
// on PostgreSQL with Redis, migrate once, and do not migrate at start.
func TestSeveralReplicasShareOneDatabaseAndRedis(t *testing.T) {
	multi := loadCompose(t, "deploy/docker-compose.redis.yml")
	services := multi.authServices()
	var migrate string
	for name, s := range services {
		if slices.Equal(s.Command, []string{"migrate"}) {
			migrate = name
		}
	}
	if migrate == "" {
		t.Fatal("docker-compose.redis.yml: no service runs migrate")
	}
	for name, s := range services {
		env := s.Environment
		if env["AUTH_DB_TYPE"] != "postgresql" || env["POSTGRESQL_URL"] == "" {
			t.Errorf("docker-compose.redis.yml %s: not on PostgreSQL: %v", name, env)
		}
		if !strings.HasPrefix(env["RATELIMIT_STORAGE_URL"], "redis://") && !strings.HasPrefix(env["AUTH_WATCHER_REDIS_URL"], "redis://") {
			t.Errorf("docker-compose.redis.yml %s: no Redis for replica sync", name)
		}
		if name == migrate {
			continue
		}
		if env["AUTH_MIGRATE_ON_START"] != "false" {
			t.Errorf("docker-compose.redis.yml %s: AUTH_MIGRATE_ON_START = %q, want false (the %s service migrates once)", name, env["AUTH_MIGRATE_ON_START"], migrate)
		}
		var deps map[string]struct {
			Condition string `yaml:"condition"`
		}
		dependsOn := s.DependsOn
		if err := dependsOn.Decode(&deps); err != nil || deps[migrate].Condition != "service_completed_successfully" {
			t.Errorf("docker-compose.redis.yml %s: depends_on %v (%v), want %s completed successfully", name, deps, err, migrate)
		}
	}

	m := loadManifests(t)
	c := m.workload(t, "Deployment").Template.Spec.Containers[0]
	if v, _ := c.env("AUTH_DB_TYPE"); v != "postgresql" {
		t.Errorf("Deployment AUTH_DB_TYPE = %q", v)
	}
	if v, _ := c.env("AUTH_MIGRATE_ON_START"); v != "false" {
		t.Errorf("Deployment AUTH_MIGRATE_ON_START = %q, want false (the Job migrates)", v)
	}
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("Deployment args %q, want serve", c.Args)
	}
	redis := false
	for _, e := range c.Env {
		redis = redis || e.Name == "AUTH_WATCHER_REDIS_URL" || e.Name == "RATELIMIT_STORAGE_URL"
	}
	if !redis {
		t.Error("Deployment: no Redis for replica sync (AUTH_WATCHER_REDIS_URL or RATELIMIT_STORAGE_URL)")
	}
	job := m.workload(t, "Job").Template.Spec.Containers[0]
	if !slices.Equal(job.Args, []string{"migrate"}) {
		t.Errorf("Job args %q, want migrate", job.Args)
	}
	if v, _ := job.env("AUTH_DB_TYPE"); v != "postgresql" {
		t.Errorf("Job AUTH_DB_TYPE = %q", v)
	}
	// Every secret the pods read is in the example Secret.
	secret := m.get(t, "Secret")
	for kind, ct := range map[string]container{"Deployment": c, "Job": job} {
		for _, e := range ct.Env {
			ref := e.ValueFrom.SecretKeyRef
			if ref.Name == "" {
				continue
			}
			if ref.Name != secret.Metadata.Name || ref.Key != e.Name {
				t.Errorf("%s %s from secret %s key %s, want %s key %s", kind, e.Name, ref.Name, ref.Key, secret.Metadata.Name, e.Name)
			}
			if _, ok := secret.StringData[ref.Key]; !ok {
				t.Errorf("%s reads %s, which the example Secret lacks", kind, ref.Key)
			}
		}
	}
}

// TestConfigMap: the ConfigMap's model is the repository's, and its
// config.yaml loads (unknown keys are an error) with the Deployment's
// settings.
func TestConfigMap(t *testing.T) {
	m := loadManifests(t)
	cm := m.get(t, "ConfigMap")
	strip := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := strip(cm.Data["model.conf"]), strip(auth.DefaultModel); !slices.Equal(got, want) {
		t.Errorf("ConfigMap model.conf:\n%s\nwant model.conf:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "config.yaml")
	modelPath := filepath.Join(dir, "model.conf")
	if err := os.WriteFile(cfgPath, []byte(cm.Data["config.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(modelPath, []byte(cm.Data["model.conf"]), 0o600); err != nil {
		t.Fatal(err)
	}
	dep := m.workload(t, "Deployment")
	c := dep.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom.SecretKeyRef.Key != "" {
			env[e.Name] = m.get(t, "Secret").StringData[e.ValueFrom.SecretKeyRef.Key]
		}
	}
	// The mounted paths, as seen from here.
	mount := ""
	for _, vm := range c.VolumeMounts {
		mount = vm.MountPath
	}
	for _, k := range []string{"AUTH_CONFIG", "AUTH_MODEL_PATH"} {
		if !strings.HasPrefix(env[k], mount+"/") {
			t.Errorf("Deployment %s = %q, not in the ConfigMap's mount %s", k, env[k], mount)
		}
	}
	env["AUTH_CONFIG"], env["AUTH_MODEL_PATH"] = cfgPath, modelPath
	cfg, err := settings.Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the ConfigMap's config.yaml with the Deployment's settings: %v", err)
	}
	if cfg.Database.Type != "postgresql" || cfg.Database.MigrateOnStart || cfg.Server.Port != 4000 {
		t.Errorf("loaded configuration: database %+v, port %d", cfg.Database, cfg.Server.Port)
	}
	// The ConfigMap volume is the ConfigMap.
	vols := dep.Template.Spec.Volumes
	if len(vols) != 1 || vols[0].ConfigMap.Name != cm.Metadata.Name {
		t.Errorf("Deployment volumes %+v, want the ConfigMap %s", vols, cm.Metadata.Name)
	}
}

func TestDockerfile(t *testing.T) {
	stages := dockerStages(t)
	if len(stages) != 2 {
		t.Fatalf("Dockerfile: %d stages, want build and run", len(stages))
	}
	build, run := stages[0], stages[1]
	builds := build.find("RUN CGO_ENABLED=0 go build ")
	if len(builds) != 1 || !strings.HasSuffix(builds[0], " ./cmd/auth-server") {
		t.Errorf("Dockerfile build stage: %q, want RUN CGO_ENABLED=0 go build … ./cmd/auth-server", builds)
	}
	if !strings.Contains(run.from, "distroless/static") || !strings.HasSuffix(run.from, ":nonroot") {
		t.Errorf("Dockerfile runs FROM %q, want a distroless static nonroot image", run.from)
	}
	if got := run.find("USER "); !slices.Equal(got, []string{"USER nonroot:nonroot"}) {
		t.Errorf("Dockerfile USER = %q, want nonroot:nonroot", got)
	}
	if got := run.find("ENTRYPOINT "); !slices.Equal(got, []string{`ENTRYPOINT ["/usr/local/bin/auth-server"]`}) {
		t.Errorf("Dockerfile ENTRYPOINT = %q", got)
	}
	// The SQLite directory is a volume the nonroot user can write: a new
	// named volume takes the ownership of the image's directory.
	dbDir := filepath.Dir(run.env()["AUTH_DB_PATH"])
	owned := false
	for _, l := range run.find("COPY ") {
		f := strings.Fields(l)
		owned = owned || (slices.Contains(f, "--chown=nonroot:nonroot") || slices.Contains(f, "--chown="+strconv.Itoa(nonrootUID)+":"+strconv.Itoa(nonrootUID))) && f[len(f)-1] == dbDir
	}
	if !owned {
		t.Errorf("Dockerfile: %s is not created owned by nonroot (a volume there would not be writable)", dbDir)
	}
	if got := run.find("VOLUME "); !slices.Equal(got, []string{`VOLUME ["` + dbDir + `"]`}) {
		t.Errorf("Dockerfile VOLUME = %q, want %s", got, dbDir)
	}
	single := loadCompose(t, "deploy/docker-compose.yml")
	for name, s := range single.authServices() {
		if filepath.Dir(s.Environment["AUTH_DB_PATH"]) != dbDir || len(s.Volumes) != 1 || !strings.HasSuffix(s.Volumes[0], ":"+dbDir) {
			t.Errorf("docker-compose.yml %s: AUTH_DB_PATH %q and volumes %q, want the file in the volume at %s",
				name, s.Environment["AUTH_DB_PATH"], s.Volumes, dbDir)
		}
	}
}

func TestSystemdUnit(t *testing.T) {
	env, keys := unitEnv(t)
	want := map[string][]string{
		"ExecStart":    {"/usr/local/bin/auth-server serve"},
		"ExecStartPre": {"/usr/local/bin/auth-server migrate"},
		"User":         {"auth"},
		"KillSignal":   {"SIGTERM"},
	}
	for k, v := range want {
		if !slices.Equal(keys[k], v) {
			t.Errorf("auth-server.service %s = %q, want %q", k, keys[k], v)
		}
	}
	// The SQLite file is in the state directory, which the unit may write.
	state := "/var/lib/" + strings.Join(keys["StateDirectory"], "")
	if filepath.Dir(env["AUTH_DB_PATH"]) != state || !slices.Contains(keys["ReadWritePaths"], state) {
		t.Errorf("auth-server.service: AUTH_DB_PATH %q, StateDirectory %q, ReadWritePaths %q", env["AUTH_DB_PATH"], state, keys["ReadWritePaths"])
	}
	// The unit stops within its timeout: the server's own shutdown
	// timeout is shorter.
	stop, err := strconv.Atoi(strings.Join(keys["TimeoutStopSec"], ""))
	if err != nil || float64(stop) <= defaults(t).Server.ShutdownTimeout.Seconds() {
		t.Errorf("auth-server.service TimeoutStopSec %q, want more than AUTH_SHUTDOWN_TIMEOUT %v", keys["TimeoutStopSec"], defaults(t).Server.ShutdownTimeout)
	}
	if got := keys["EnvironmentFile"]; len(got) != 1 || !strings.Contains(string(read(t, "deploy/auth-server.service")), "deploy/auth-server.env.example "+got[0]) {
		t.Errorf("auth-server.service EnvironmentFile %q is not where its install note puts auth-server.env.example", got)
	}
}
