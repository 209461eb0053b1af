#!/usr/bin/env python3
"""Check a rendering of charts/pfc against the deployment contract (docs/roles.md).

Usage: check-contract.py NAME RENDERED.yaml   (NAME labels the messages)

What it proves, for every value set verify.sh renders:
  * each role runs the one pfc image with the role as its only argument, listens where the
    contract says (PFC_GRPC_ADDR / PFC_HTTP_ADDR on 0.0.0.0) and gets the variables it needs
    (PFC_REDIS_URL + PFC_REDIS_PASSWORD_FILE inside a mounted Secret or PFC_REDIS_PASSWORD from a
    Secret, PFC_*_URL pointing at real Services and
    ports, PFC_AUTH_SIGNING_KEY_FILE inside a mounted Secret);
  * gRPC roles have gRPC (or `pfc probe grpc`) probes on their port, the gateway /healthz and /readyz;
  * every pod runs as non-root 65532 (Redis: 999) with a read-only root filesystem, no
    capabilities, RuntimeDefault seccomp and no service account token;
  * every Service selects pods of the release and targets a named container port that exists;
    the Redis password Secret, the signing key Secret and the shared ConfigMap referenced exist
    (or are the existing Secrets the values name).
"""
import sys

import yaml

ROLES = {  # role -> (port env var, port, needs redis)
    "jobs": ("PFC_GRPC_ADDR", 50051, True),
    "worker": ("PFC_GRPC_ADDR", 50054, False),  # talks to the jobs core (PFC_JOBS_URL), not Redis
    "auth": ("PFC_GRPC_ADDR", 50052, False),
    "chat": ("PFC_GRPC_ADDR", 50053, True),
    "gateway": ("PFC_HTTP_ADDR", 8000, False),
}
EXISTING_SECRETS = {"redis-credentials", "pfc-signing-key"}  # named by ci/external-redis-values.yaml

name, path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(path)) if isinstance(d, dict) and d.get("kind")]
errors = []


def err(msg):
    errors.append(f"{name}: {msg}")


by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

configmaps = by_kind.get("ConfigMap", {})
secrets = set(by_kind.get("Secret", {})) | EXISTING_SECRETS
services = by_kind.get("Service", {})
shared = next((cm["data"] for n, cm in configmaps.items() if n.endswith("-config") and "PFC_LOG" in cm.get("data", {})), None)
if shared is None:
    err("no shared ConfigMap with PFC_* settings")
    shared = {}


def pod_specs():
    for kind in ("Deployment", "StatefulSet"):
        for n, d in by_kind.get(kind, {}).items():
            yield kind, n, d["spec"]["template"]["metadata"].get("labels", {}), d["spec"]["template"]["spec"]
    for n, d in by_kind.get("Pod", {}).items():
        yield "Pod", n, d["metadata"].get("labels", {}), d["spec"]


images = set()
for kind, n, labels, spec in pod_specs():
    component = labels.get("app.kubernetes.io/component")
    if spec.get("automountServiceAccountToken") is not False:
        err(f"{n}: automountServiceAccountToken is not false")
    psc = spec.get("securityContext", {})
    if not psc.get("runAsNonRoot") or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        err(f"{n}: pod securityContext lacks runAsNonRoot or seccomp RuntimeDefault")
    uid = 999 if component == "redis" else 65532
    if psc.get("runAsUser") != uid:
        err(f"{n}: runAsUser {psc.get('runAsUser')} != {uid}")
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                and sc.get("capabilities", {}).get("drop") == ["ALL"]):
            err(f"{n}/{c['name']}: container securityContext is not locked down")
        res = c.get("resources", {})
        if not all(res.get(a, {}).get(b) for a in ("requests", "limits") for b in ("cpu", "memory")):
            err(f"{n}/{c['name']}: cpu/memory requests and limits are not all set")
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref["name"] not in secrets:
                err(f"{n}: env {e['name']} references a missing Secret {ref['name']}")
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef and ef["configMapRef"]["name"] not in configmaps:
                err(f"{n}: envFrom references a missing ConfigMap")
    if kind != "Deployment" or component not in ROLES:
        continue
    c = spec["containers"][0]
    images.add(c["image"])
    if c.get("args") != [component]:
        err(f"{n}: args {c.get('args')} != ['{component}']")
    env = {e["name"]: e for e in c.get("env", [])}
    var, port, redis = ROLES[component]
    if env.get(var, {}).get("value") != f"0.0.0.0:{port}":
        err(f"{n}: {var} is not 0.0.0.0:{port}")
    if redis:
        url = env.get("PFC_REDIS_URL", {}).get("value", "")
        if not url.startswith(("redis://", "rediss://")):
            err(f"{n}: PFC_REDIS_URL missing or not a redis:// URL")
        host = url.split("//", 1)[-1].split(":")[0].split("/")[0]
        if by_kind.get("StatefulSet") and host not in services:  # in-chart Redis
            err(f"{n}: PFC_REDIS_URL host {host} is not a Service of the release")
        pw = env.get("PFC_REDIS_PASSWORD")
        if pw and not (pw.get("valueFrom") or {}).get("secretKeyRef"):
            err(f"{n}: PFC_REDIS_PASSWORD is not from a Secret")
        pwfile = env.get("PFC_REDIS_PASSWORD_FILE", {}).get("value")
        if pwfile:
            if pw:
                err(f"{n}: both PFC_REDIS_PASSWORD and PFC_REDIS_PASSWORD_FILE are set")
            mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
            vols = {v["name"]: v for v in spec.get("volumes", [])}
            if not any(pwfile.startswith(mp.rstrip("/") + "/") and "secret" in vols.get(vn, {})
                       and vols[vn]["secret"]["secretName"] in secrets for vn, mp in mounts.items()):
                err(f"{n}: PFC_REDIS_PASSWORD_FILE={pwfile!r} is not inside a mounted Secret of the release")
    if component == "auth":
        keyfile = env.get("PFC_AUTH_SIGNING_KEY_FILE", {}).get("value", "")
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        ok = any(keyfile.startswith(mp.rstrip("/") + "/") and "secret" in vols.get(vn, {}) for vn, mp in mounts.items())
        if not ok:
            err(f"{n}: PFC_AUTH_SIGNING_KEY_FILE={keyfile!r} is not inside a mounted Secret")
        for vn, v in vols.items():
            if "secret" in v and v["secret"]["secretName"] not in secrets:
                err(f"{n}: volume {vn} references a missing Secret")
    probes = [c.get(p) for p in ("livenessProbe", "readinessProbe")]
    if any(p is None for p in probes):
        err(f"{n}: liveness or readiness probe missing")
    elif component == "gateway":
        paths = [(p.get("httpGet") or {}).get("path") or " ".join((p.get("exec") or {}).get("command", [])) for p in probes]
        if not ("/healthz" in paths[0] and "/readyz" in paths[1]):
            err(f"{n}: gateway probes are not /healthz (liveness) and /readyz (readiness): {paths}")
    else:
        for p in probes:
            if (p.get("grpc") or {}).get("port") != port and f"127.0.0.1:{port}" not in (p.get("exec") or {}).get("command", []):
                err(f"{n}: probe is neither grpc nor `pfc probe grpc` on port {port}")
if len(images) > 1:
    err(f"roles use different images: {images}")

# In-cluster URLs point at Services of the release, on the right port.
for var, role in (("PFC_JOBS_URL", "jobs"), ("PFC_AUTH_URL", "auth"), ("PFC_CHAT_URL", "chat")):
    url = shared.get(var, "")
    hostport = url.removeprefix("http://")
    host, _, port = hostport.partition(":")
    svc = services.get(host)
    if not svc:
        err(f"{var}={url!r}: no Service {host!r}")
        continue
    if svc["spec"]["selector"].get("app.kubernetes.io/component") != role:
        err(f"{var}: Service {host} does not select the {role} pods")
    if int(port or 0) not in [p["port"] for p in svc["spec"]["ports"]]:
        err(f"{var}: Service {host} has no port {port}")

# Every Service selects an existing workload and targets a named port it declares.
pods = list(pod_specs())
for sn, svc in services.items():
    sel = svc["spec"].get("selector", {})
    match = [spec for kind, n, labels, spec in pods if kind != "Pod" and sel and all(labels.get(k) == v for k, v in sel.items())]
    if not match:
        err(f"Service {sn}: selects no workload")
        continue
    names = {p.get("name") for spec in match for c in spec["containers"] for p in c.get("ports", [])}
    for p in svc["spec"]["ports"]:
        if isinstance(p.get("targetPort"), str) and p["targetPort"] not in names:
            err(f"Service {sn}: targetPort {p['targetPort']} is not a container port name")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"  {name:15s} contract OK ({len(docs)} objects)")
