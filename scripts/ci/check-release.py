#!/usr/bin/env python3
"""Release and shutdown rules the shipping files must keep (issue 15, defects 4 and 7).

  check-release.py     exit 1 naming every rule broken

Rules:
  * release.yml publishes only after CI passed: its image job needs a job that runs ci.yml
    (a reusable workflow call), and ci.yml can be called (`on: workflow_call`);
  * every third-party action in the workflows is pinned to a full commit SHA;
  * every GitHub Actions cache of a build (`type=gha`) has its own scope, and CI and release
    do not share one;
  * release images carry an SBOM and provenance and are signed (cosign, keyless);
  * the Dockerfile has no `npm ci || npm install` fallback and caches dependencies in their
    own layer (cargo-chef), so a source or docs edit does not rebuild every crate;
  * compose: the worker's drain (PFC_SHUTDOWN_TIMEOUT) ends well before its stop grace period.
"""
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
WF = ROOT / ".github" / "workflows"
errors = []


def load(path):
    return yaml.safe_load(path.read_text())


def on(doc):
    # PyYAML reads the key `on` as the boolean True
    return doc.get("on", doc.get(True)) or {}


def seconds(v):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", str(v).strip())
    if not m:
        raise ValueError(f"unreadable duration {v!r}")
    n, unit = int(m.group(1)), m.group(2)
    return n / 1000 if unit == "ms" else n * {"s": 1, "m": 60, "h": 3600}[unit]


ci, release = load(WF / "ci.yml"), load(WF / "release.yml")
if "workflow_call" not in on(ci):
    errors.append("ci.yml cannot be called by release.yml (no `on: workflow_call`)")
gates = [n for n, j in release["jobs"].items() if str(j.get("uses", "")).endswith("/ci.yml")]
if not gates:
    errors.append("release.yml has no job running ci.yml: releases are not gated on CI")
else:
    def needs(job):
        n = release["jobs"][job].get("needs", [])
        return {n} if isinstance(n, str) else set(n)

    def gated(job, seen=()):
        return bool(needs(job) & set(gates)) or any(gated(n, seen + (job,)) for n in needs(job) if n not in seen)

    for name, job in release["jobs"].items():
        if name in gates:
            continue
        if not gated(name):
            errors.append(f"release.yml job {name!r} does not wait for CI ({gates[0]!r})")

for wf in sorted(WF.glob("*.yml")):
    text = wf.read_text()
    for m in re.finditer(r"^\s*(?:-\s*)?uses:\s*([^\s#]+)", text, re.M):
        ref = m.group(1)
        if ref.startswith("./"):
            continue
        if not re.search(r"@[0-9a-f]{40}$", ref):
            errors.append(f"{wf.name}: {ref} is not pinned to a commit SHA")
    scopes = re.findall(r"type=gha(?:,[^\s\n]*)?", text)
    for s in scopes:
        if "scope=" not in s:
            errors.append(f"{wf.name}: cache `{s}` has no scope")

ci_scopes = set(re.findall(r"type=gha[^\n]*scope=([\w.${}:-]+)", (WF / "ci.yml").read_text()))
rel_scopes = set(re.findall(r"type=gha[^\n]*scope=([\w.${}:-]+)", (WF / "release.yml").read_text()))
if ci_scopes & rel_scopes:
    errors.append(f"ci.yml and release.yml share cache scopes {sorted(ci_scopes & rel_scopes)}")

rel_text = (WF / "release.yml").read_text()
for what, pattern in [("an SBOM (sbom: true)", r"^\s*sbom:\s*true"),
                      ("provenance", r"^\s*provenance:\s*\S+"),
                      ("a cosign signature", r"cosign sign ")]:
    if not re.search(pattern, rel_text, re.M):
        errors.append(f"release.yml: release images lack {what}")
if "id-token: write" not in rel_text:
    errors.append("release.yml: keyless signing needs `id-token: write`")

docker = (ROOT / "Dockerfile").read_text()
if re.search(r"npm ci[^\n]*\\?\s*\n?\s*\|\|", docker) or "npm install" in docker:
    errors.append("Dockerfile: `npm ci` must not fall back to `npm install` (the lockfile is the truth)")
if "cargo chef cook" not in docker:
    errors.append("Dockerfile: dependencies are not built in their own cached layer (cargo chef cook)")

compose = load(ROOT / "compose" / "compose.yaml")
worker = compose["services"]["worker"]
grace = worker.get("stop_grace_period") or compose.get("x-pfc", {}).get("stop_grace_period", "10s")
drain = (worker.get("environment") or {}).get("PFC_SHUTDOWN_TIMEOUT", "20s")
if seconds(grace) < seconds(drain) + 5:
    errors.append(f"compose: worker stop_grace_period {grace} leaves no margin over PFC_SHUTDOWN_TIMEOUT {drain} "
                  "(SIGKILL would land while jobs are handed back)")

if errors:
    print("release checks failed:", *errors, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print("release checks: ok (CI gate, pinned actions, cache scopes, SBOM/provenance/signature, "
      "cargo-chef, strict npm ci, compose worker grace)")
