"""Offline checks of the deployment files, called by scripts/deploy-check.sh:

    check_manifests.py k8s NAME BUILT.yaml [--production]   objects built by kustomize
    check_manifests.py compose docker-compose.yml          what the Compose schema cannot say
    check_manifests.py dockerfile Dockerfile               the image recipe's shape

`k8s` validates every object: built-in kinds against the Kubernetes schemas
(kubernetes-validate, strict: unknown fields are errors), custom resources against the CRD
schemas vendored in k8s/crds (strict as well, as `kubectl apply` with field validation would
be); then asserts the properties issue 13 §4 asks of every Deployment and of the suite. Prints
one line per problem and exits 1 when there is any.
"""

import copy
import json
import os
import re
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

ROOT = Path(os.environ.get("DEPLOY_CHECK_ROOT") or Path(__file__).resolve().parents[2])
# The oldest Kubernetes the manifests are meant for (kubernetes-validate ships its schemas).
K8S_VERSION = os.environ.get("DEPLOY_CHECK_K8S_VERSION", "1.32.0")
# name -> ops port: 9101 + its place in scripts/run.sh's SERVICES.
SERVICES = {"enrollment": 9101, "collection": 9102, "benefits": 9103, "card-issuance": 9104, "notification": 9105}
DB_ROLES = {"enrollment", "collection", "benefits", "card_issuance", "notification"}
SIMULATORS = ("tax-authority-sim", "bank-sim", "institution-sim", "smsc-sim")
# Where a service's pods may open connections (NetworkPolicy egress).
ALLOWED_EGRESS = (
    ({"app.kubernetes.io/name": "insurance-broker"}, None),
    ({"cnpg.io/cluster": "insurance-db"}, None),
    ({"app.kubernetes.io/name": "otel-collector"}, None),
    ({"k8s-app": "kube-dns"}, {"kubernetes.io/metadata.name": "kube-system"}),
)

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def name_of(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


# --- schemas ------------------------------------------------------------------------------


def strict_schema(node):
    """An openAPIV3Schema as JSON Schema that refuses unknown fields (where the CRD does not
    preserve them) and knows Kubernetes' nullable and int-or-string."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k in ("properties", "patternProperties") and isinstance(v, dict):
            out[k] = {name: strict_schema(sub) for name, sub in v.items()}
        elif k in ("items", "additionalProperties", "not") and isinstance(v, dict):
            out[k] = strict_schema(v)
        elif k in ("allOf", "anyOf", "oneOf") and isinstance(v, list):
            out[k] = [strict_schema(s) for s in v]
        else:
            out[k] = v
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = out.get("anyOf", []) + [{"type": "integer"}, {"type": "string"}]
    if out.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def load_crds():
    crds = {}
    for path in sorted((ROOT / "k8s/crds").glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd:
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                schema = strict_schema(copy.deepcopy(v["schema"]["openAPIV3Schema"]))
                # metadata is the ObjectMeta of every object (checked by the API server).
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                crds[(f"{group}/{v['name']}", kind)] = (schema, path.name)
    return crds


def validate_schemas(objs, crds):
    for obj in objs:
        key = (obj.get("apiVersion"), obj.get("kind"))
        if key in crds:
            schema, source = crds[key]
            v = jsonschema.Draft7Validator(schema)
            for e in sorted(v.iter_errors(obj), key=lambda e: list(e.absolute_path)):
                path = ".".join(str(p) for p in e.absolute_path) or "(root)"
                problem(name_of(obj), f"{path}: {e.message} (schema {source})")
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problem(name_of(obj), f"no schema for {key[0]} {key[1]} (not built in, no CRD in k8s/crds)")
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(root)"
            problem(name_of(obj), f"{path}: {e.message} (Kubernetes {K8S_VERSION} schema)")


# --- properties ---------------------------------------------------------------------------


def selects(selector, labels):
    match = (selector or {}).get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def container_security(where, pod, c):
    psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})

    def either(key):
        return csc.get(key, psc.get(key))

    if either("runAsNonRoot") is not True:
        problem(where, "runAsNonRoot is not true")
    if either("runAsUser") == 0:
        problem(where, "runs as uid 0")
    if csc.get("readOnlyRootFilesystem") is not True:
        problem(where, "readOnlyRootFilesystem is not true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem(where, "allowPrivilegeEscalation is not false")
    if csc.get("privileged"):
        problem(where, "privileged")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        problem(where, "capabilities do not drop ALL")
    if csc.get("capabilities", {}).get("add"):
        problem(where, "adds capabilities")
    if (either("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problem(where, "seccompProfile is not RuntimeDefault")


def resources_set(where, c):
    r = c.get("resources", {})
    for part in ("requests", "limits"):
        for res in ("cpu", "memory"):
            if res not in r.get(part, {}):
                problem(where, f"no {part}.{res}")


def port_number(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check_deployment(d, objs, production):
    where = name_of(d)
    spec = d.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    name = d["metadata"]["name"]
    if production and spec.get("replicas", 1) < 2:
        problem(where, f"replicas {spec.get('replicas', 1)} < 2 in production")
    if not pod.get("containers"):
        problem(where, "no containers")
    for c in pod.get("containers", []):
        cw = f"{where} container {c.get('name')}"
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            if probe not in c:
                problem(cw, f"no {probe}")
        resources_set(cw, c)
        container_security(cw, pod, c)
        if name in SERVICES:
            port = SERVICES[name]
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                get = c.get(probe, {}).get("httpGet")
                if probe in c and (not get or port_number(c, get.get("port")) != port):
                    problem(cw, f"{probe} is not an HTTP GET on the ops port {port}")
            if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                problem(cw, "readinessProbe does not ask /readyz")
            if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                problem(cw, "livenessProbe does not ask /healthz")
            maps = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
            if not maps:
                problem(cw, "configuration does not come from a ConfigMap (envFrom)")
            for m in maps:
                if not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] == m for o in objs):
                    problem(cw, f"ConfigMap {m} is not in the build")
            secret_refs = 0
            for e in c.get("env", []):
                if re.search(r"PASSWORD|SECRET|TOKEN", e["name"]):
                    if "secretKeyRef" not in e.get("valueFrom", {}):
                        problem(cw, f"env {e['name']} does not come from a Secret")
                    else:
                        secret_refs += 1
                if "value" in e and re.search(r"://[^$/@]+:[^$/@]+@", e["value"]):
                    problem(cw, f"env {e['name']} has a literal password")
            if secret_refs == 0:
                problem(cw, "no secret comes from a Secret")
    same_ns = [o for o in objs if o["metadata"].get("namespace") == d["metadata"].get("namespace")]
    if not any(o["kind"] == "PodDisruptionBudget" and selects(o["spec"].get("selector"), labels) for o in same_ns):
        problem(where, "no PodDisruptionBudget selects its pods")
    policies = [o for o in same_ns if o["kind"] == "NetworkPolicy" and selects(o["spec"].get("podSelector"), labels)]
    if not any("Egress" in p["spec"].get("policyTypes", []) for p in policies):
        problem(where, "no NetworkPolicy limits its egress")
    if name in SERVICES:
        for p in policies:
            for rule in p["spec"].get("egress", []):
                peers = rule.get("to", [])
                ports = [(x.get("port"), x.get("protocol", "TCP")) for x in rule.get("ports", [])]
                if name == "notification" and ports == [(2775, "TCP")] and all(
                    "ipBlock" in peer and peer["ipBlock"].get("cidr") not in ("0.0.0.0/0", "::/0") for peer in peers
                ) and peers:
                    continue  # SMPP to the SMS centre, one address

                if not peers:
                    problem(name_of(p), "an egress rule without `to` allows everywhere")
                for peer in peers:
                    ns = (peer.get("namespaceSelector") or {}).get("matchLabels")
                    pods = (peer.get("podSelector") or {}).get("matchLabels")
                    if "ipBlock" in peer or not any(pods == want and ns == want_ns for want, want_ns in ALLOWED_EGRESS):
                        problem(name_of(p), f"egress to {peer} is not the broker, the database, the collector or DNS")
        services = [
            o for o in same_ns if o["kind"] == "Service" and selects({"matchLabels": o["spec"].get("selector", {})}, labels)
        ]
        monitored = False
        for s in services:
            for m in same_ns:
                if m["kind"] == "ServiceMonitor" and selects(m["spec"].get("selector"), s["metadata"].get("labels", {})):
                    ports = {p.get("name") for p in s["spec"].get("ports", [])}
                    monitored |= any(e.get("port") in ports for e in m["spec"].get("endpoints", []))
        if not monitored:
            problem(where, "no ServiceMonitor scrapes its ops port through a Service")


def check_job(j):
    pod = j["spec"]["template"]["spec"]
    for c in pod.get("containers", []):
        cw = f"{name_of(j)} container {c.get('name')}"
        resources_set(cw, c)
        container_security(cw, pod, c)


def check_suite(objs, production, name):
    kinds = {}
    for o in objs:
        kinds.setdefault(o["kind"], []).append(o)
    deployments = {d["metadata"]["name"] for d in kinds.get("Deployment", [])}
    for s in SERVICES:
        if s not in deployments:
            problem(name, f"no Deployment of {s}")
    clusters = kinds.get("Cluster", [])
    if len(clusters) != 1:
        problem(name, f"{len(clusters)} CloudNativePG Clusters (want 1)")
    for c in clusters:
        roles = {r["name"]: r for r in c["spec"].get("managed", {}).get("roles", [])}
        for role in sorted(DB_ROLES - set(roles)):
            problem(name_of(c), f"no managed role {role}")
        for role, r in roles.items():
            if r.get("superuser") or r.get("createrole") or r.get("createdb"):
                problem(name_of(c), f"role {role} has more than login")
            if "passwordSecret" not in r:
                problem(name_of(c), f"role {role} has no passwordSecret")
        if production:
            if c["spec"].get("instances") != 3:
                problem(name_of(c), f"instances {c['spec'].get('instances')} (want 3 in production)")
            backup = c["spec"].get("backup", {})
            plugins = c["spec"].get("plugins", [])
            if not backup.get("barmanObjectStore") and not any(p.get("isWALArchiver") for p in plugins):
                problem(name_of(c), "no backups (barmanObjectStore or a WAL-archiver plugin) in production")
            if not kinds.get("ScheduledBackup"):
                problem(name, "no ScheduledBackup in production")
    brokers = kinds.get("RabbitmqCluster", [])
    if len(brokers) != 1:
        problem(name, f"{len(brokers)} RabbitmqClusters (want 1)")
    for b in brokers:
        plugins = b["spec"].get("rabbitmq", {}).get("additionalPlugins", [])
        if "rabbitmq_shovel" not in plugins:
            problem(name_of(b), "the shovel plugin is not enabled")
        if production and b["spec"].get("replicas") != 3:
            problem(name_of(b), f"replicas {b['spec'].get('replicas')} (want 3 in production)")
    users = {u["metadata"]["name"] for u in kinds.get("User", [])}
    granted = {p["spec"].get("userReference", {}).get("name") for p in kinds.get("Permission", [])}
    for s in SERVICES:
        if s not in users or s not in granted:
            problem(name, f"no broker User with a Permission for {s}")
    # The services' data-sharing user alone has a tag: policymaker, to put and remove the lines'
    # shovels (runtime parameters) through the management API; nobody is an administrator.
    allowed_tags = {"data-sharing": ["policymaker"]}
    for u in kinds.get("User", []):
        tags = u["spec"].get("tags") or []
        if tags != allowed_tags.get(u["metadata"]["name"], []):
            problem(name_of(u), f"tags {tags} (a service user has none; data-sharing only policymaker)")
    for kind in ("Exchange", "Queue", "Binding", "Policy", "TopicPermission"):
        if not kinds.get(kind):
            problem(name, f"no {kind} resources")
    for o in objs:
        if o["kind"] != "Namespace" and not o["metadata"].get("namespace"):
            problem(name_of(o), "no namespace")


def check_k8s(name, path, production):
    objs = [o for o in yaml.safe_load_all(Path(path).read_text()) if o]
    if not objs:
        problem(name, "kustomize built nothing")
        return
    validate_schemas(objs, load_crds())
    for o in objs:
        if o["kind"] == "Deployment":
            check_deployment(o, objs, production)
        if o["kind"] == "Job":
            check_job(o)
    if any(o["kind"] == "Job" for o in objs) and not any(o["kind"] == "Deployment" for o in objs):
        # The cutover example: a Job over a ConfigMap of timetables.
        for j in (o for o in objs if o["kind"] == "Job"):
            args = j["spec"]["template"]["spec"]["containers"][0].get("args", [])
            if args[:2] != ["freeze", "plan"]:
                problem(name_of(j), f"does not run `insurancectl freeze plan` (args {args})")
            maps = {v["configMap"]["name"] for v in j["spec"]["template"]["spec"].get("volumes", []) if "configMap" in v}
            if not any(o["kind"] == "ConfigMap" and o["metadata"]["name"] in maps for o in objs):
                problem(name_of(j), "its timetable ConfigMap is not in the build")
        return
    check_suite(objs, production, name)


# --- compose and Dockerfile ---------------------------------------------------------------


def check_compose(path):
    text = Path(path).read_text()
    doc = yaml.safe_load(text)
    where = Path(path).name
    if re.search(r"guest:guest|amqp://guest", text):
        problem(where, "a service uses the guest user")
    services = doc.get("services", {})
    for name in ("postgres", "rabbitmq", "otel-collector", *SERVICES, *SIMULATORS):
        if name not in services:
            problem(where, f"no service {name}")
    roles_sql = (ROOT / "deploy/compose/postgres/roles.sql").read_text()
    definitions = json.loads((ROOT / "deploy/compose/rabbitmq/definitions.json").read_text())
    broker_users = {p["user"] for p in definitions.get("permissions", [])}
    for name, port in SERVICES.items():
        s = services.get(name, {})
        test = " ".join(s.get("healthcheck", {}).get("test", []))
        if f":{port}/readyz" not in test:
            problem(where, f"{name}: the health check does not ask :{port}/readyz")
        env = s.get("environment", {})
        for key in ("APP__DATABASE__URL", "APP__BROKER__URL"):
            url = str(env.get(key, ""))
            user = re.match(r"^\w+://([^:@]+)", url)
            if not user:
                problem(where, f"{name}: no {key} with a user of its own")
            elif user.group(1) in ("postgres", "guest", "admin") or "${RABBITMQ_ADMIN" in url:
                problem(where, f"{name}: {key} connects as {user.group(1)}")
            elif key == "APP__DATABASE__URL" and not re.search(rf"create role {user.group(1)} login", roles_sql):
                problem(where, f"{name}: database role {user.group(1)} is not made by roles.sql")
            elif key == "APP__BROKER__URL" and user.group(1) not in broker_users:
                problem(where, f"{name}: broker user {user.group(1)} has no permissions in definitions.json")
        if s.get("user") in (None, "root", "0", "0:0"):
            problem(where, f"{name}: runs as root")
        if not s.get("read_only"):
            problem(where, f"{name}: the root filesystem is writable")
        if "ALL" not in s.get("cap_drop", []):
            problem(where, f"{name}: capabilities not dropped")
        if "depends_on" not in s:
            problem(where, f"{name}: starts without waiting for the database and broker")
    for name in ("postgres", "rabbitmq"):
        if "healthcheck" not in services.get(name, {}):
            problem(where, f"{name}: no health check")
        if not any(str(v).split(":")[0] in doc.get("volumes", {}) for v in services.get(name, {}).get("volumes", [])):
            problem(where, f"{name}: no named volume for its data")
    for port in services.get("rabbitmq", {}).get("ports", []):
        if str(port).endswith(":15672") and not str(port).startswith("127.0.0.1:"):
            problem(where, "the management API is published beyond localhost")
    plugins = (ROOT / "deploy/compose/rabbitmq/enabled_plugins").read_text()
    for plugin in ("rabbitmq_management", "rabbitmq_shovel"):
        if plugin not in plugins:
            problem("deploy/compose/rabbitmq/enabled_plugins", f"{plugin} is not enabled")


def check_dockerfile(path):
    where = Path(path).name
    lines = []
    for raw in Path(path).read_text().replace("\\\n", " ").splitlines():
        s = raw.strip()
        if s and not s.startswith("#"):
            lines.append(s)
    stages = [l for l in lines if l.upper().startswith("FROM ")]
    if len(stages) < 2:
        problem(where, f"{len(stages)} stage(s): not a multi-stage build")
        return
    if not re.match(r"FROM\s+rust:", stages[0], re.I):
        problem(where, f"the builder is not the rust image: {stages[0]}")
    if not re.search(r"distroless|debian:\S*slim|\$\{DEBIAN_RELEASE\}-slim", stages[-1]):
        problem(where, f"the runtime is neither distroless nor Debian slim: {stages[-1]}")
    last = lines[lines.index(stages[-1]) :]
    if not any(re.match(r"ARG\s+BIN\b", l) for l in lines):
        problem(where, "no ARG BIN selecting the binary")
    users = [l.split()[1] for l in last if l.upper().startswith("USER ")]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problem(where, "the runtime stage does not switch to a non-root USER")
    if not any(l.upper().startswith("ENTRYPOINT") for l in last):
        problem(where, "no ENTRYPOINT in the runtime stage")


def main(argv):
    if len(argv) >= 4 and argv[1] == "k8s":
        check_k8s(argv[2], argv[3], "--production" in argv[4:])
    elif len(argv) == 3 and argv[1] == "compose":
        check_compose(argv[2])
    elif len(argv) == 3 and argv[1] == "dockerfile":
        check_dockerfile(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(f"  FAIL {p}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
