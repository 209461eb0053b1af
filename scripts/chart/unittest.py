#!/usr/bin/env python3
"""Run the chart's helm-unittest suites (charts/pfc/tests/*_test.yaml) without the plugin.

helm-unittest is a Helm plugin shipped as a Go binary from GitHub releases; no package registry
this project can reach carries it, and the machine has no Go toolchain recent enough to build
it. This runner reads the same suite files (a subset of helm-unittest's documented format,
https://github.com/helm-unittest/helm-unittest/blob/main/DOCUMENT.md) and checks them against
`helm template` output, so the suites stay portable: where the plugin is installed,
`helm unittest charts/pfc` runs them as well.

  unittest.py [CHART] [-f GLOB]...    run the suites (default charts/pfc, tests/*_test.yaml)
  unittest.py --list                  list suites and tests

Supported: suite/test `values`, `set`, `templates`/`template`, `release`, `capabilities`
(`majorVersion`, `minorVersion`, `apiVersions`), `documentIndex`, `documentSelector`
(`path`, `value`), and the assertions equal, notEqual, matchRegex, notMatchRegex, contains,
notContains (`any`, `count`), exists, notExists, isNullOrEmpty, isNotNullOrEmpty, isKind,
isAPIVersion, isSubset, isNotSubset, hasDocuments, lengthEqual, containsDocument,
failedTemplate (`errorMessage`, `errorPattern`), notFailedTemplate, each with `not: true`.
Paths: `a.b[0].c`, `metadata.annotations["checksum/config"]`, `env[?(@.name == "X")].value`.

Prints one line per test and ends with `N passed, N failed`; exits 1 on any failure.
"""
import argparse
import base64
import concurrent.futures
import copy
import fnmatch
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


# ---- paths ---------------------------------------------------------------------------------

TOKEN = re.compile(r"""
    \[\?\(@\.(?P<fpath>[A-Za-z0-9_.\-]+)\s*==\s*(?P<fval>"[^"]*"|'[^']*'|[^)\s]+)\s*\)\]  # filter
  | \[(?P<idx>-?\d+)\]                                   # list index
  | \[(?P<q>"[^"]*"|'[^']*')\]                           # quoted key
  | \[\*\]                                               # every element
  | \.?(?P<key>[A-Za-z0-9_\-/]+)                         # plain key
""", re.X)

MISSING = object()


def parse_path(path):
    out, pos = [], 0
    while pos < len(path):
        m = TOKEN.match(path, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unsupported path syntax at {path[pos:]!r} in {path!r}")
        pos = m.end()
        if m.group("fpath"):
            v = m.group("fval")
            v = v[1:-1] if v[0] in "\"'" else yaml.safe_load(v)
            out.append(("filter", m.group("fpath"), v))
        elif m.group("idx") is not None:
            out.append(("index", int(m.group("idx"))))
        elif m.group("q"):
            out.append(("key", m.group("q")[1:-1]))
        elif m.group("key"):
            out.append(("key", m.group("key")))
        else:
            out.append(("all",))
    return out


def lookup(doc, path):
    """Every value `path` reaches in `doc` (a list; empty when the path does not exist)."""
    nodes = [doc]
    for tok in parse_path(path):
        nxt = []
        for n in nodes:
            if tok[0] == "key" and isinstance(n, dict) and tok[1] in n:
                nxt.append(n[tok[1]])
            elif tok[0] == "index" and isinstance(n, list) and -len(n) <= tok[1] < len(n):
                nxt.append(n[tok[1]])
            elif tok[0] == "all" and isinstance(n, list):
                nxt.extend(n)
            elif tok[0] == "filter" and isinstance(n, list):
                for e in n:
                    got = lookup(e, tok[1]) if isinstance(e, dict) else []
                    if got and got[0] == tok[2]:
                        nxt.append(e)
        nodes = nxt
    return nodes


def single(doc, path):
    got = lookup(doc, path)
    if not got:
        return MISSING
    has_multi = any(t[0] in ("filter", "all") for t in parse_path(path))
    return got if has_multi and len(got) > 1 else got[0]


def subset(small, big):
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(subset(a, b) for a, b in zip(small, big))
    return small == big


# ---- values --------------------------------------------------------------------------------

def set_path(values, key, value):
    """Apply one `set` entry (helm --set key syntax: dots, `\\.` escapes, `[n]` indices)."""
    parts = [p.replace("\0", ".") for p in key.replace("\\.", "\0").split(".")]
    node = values
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        m = re.fullmatch(r"(.*?)\[(\d+)\]", part)
        if m:
            name, idx = m.group(1), int(m.group(2))
            lst = node.setdefault(name, [])
            while len(lst) <= idx:
                lst.append({})
            if last:
                lst[idx] = value
            else:
                if not isinstance(lst[idx], dict):
                    lst[idx] = {}
                node = lst[idx]
            continue
        if last:
            node[part] = value
        else:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]


# ---- rendering -----------------------------------------------------------------------------

class Render:
    def __init__(self, ok, docs, error):
        self.ok, self.docs, self.error = ok, docs, error


def render(chart, suite_dir, job):
    release = job["release"]
    args = ["helm", "template", release.get("name", "RELEASE-NAME"), str(chart),
            "-n", release.get("namespace", "NAMESPACE")]
    if release.get("upgrade"):
        args.append("--is-upgrade")
    caps = job["capabilities"]
    if "majorVersion" in caps or "minorVersion" in caps:
        args += ["--kube-version", f"{caps.get('majorVersion', 1)}.{caps.get('minorVersion', 30)}.0"]
    for api in caps.get("apiVersions", []) or []:
        args += ["--api-versions", api]
    for f in job["values"]:
        args += ["-f", str((suite_dir / f).resolve())]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as tmp:
        sets = {}
        for k, v in job["set"].items():
            set_path(sets, k, copy.deepcopy(v))
        yaml.safe_dump(sets, tmp)
    args += ["-f", tmp.name]
    try:
        p = subprocess.run(args, capture_output=True, text=True)
    finally:
        os.unlink(tmp.name)
    if p.returncode != 0:
        return Render(False, [], (p.stderr or p.stdout).strip())
    docs = []
    for chunk in re.split(r"^---\s*$", p.stdout, flags=re.M):
        m = re.search(r"^# Source: [^/]+/templates/(.+)$", chunk, re.M)
        if not m:
            continue
        doc = yaml.safe_load(chunk)
        if doc is not None:
            docs.append((m.group(1).strip(), doc))
    return Render(True, docs, "")


def norm_template(t):
    return t[len("templates/"):] if t.startswith("templates/") else t


def select(docs, templates, index=None, selector=None):
    pats = [norm_template(t) for t in templates]
    picked = [d for src, d in docs if any(fnmatch.fnmatch(src, p) for p in pats)]
    if selector:
        picked = [d for d in picked if single(d, selector["path"]) == selector["value"]]
    if index is not None and index >= 0:
        picked = picked[index:index + 1]
    return picked


# ---- assertions ----------------------------------------------------------------------------

def check_doc(kind, p, doc):
    """(ok, message) for one document."""
    path = p.get("path")
    val = single(doc, path) if path else MISSING
    where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')} {path or ''}".strip()
    if kind in ("equal", "notEqual"):
        if val is MISSING:
            return False, f"{where}: path not found"
        want = p.get("value")
        if p.get("decodeBase64") and isinstance(val, str):
            val = base64.b64decode(val).decode()
        same = val == want
        return (same if kind == "equal" else not same), f"{where}: got {val!r}, expected {'' if kind == 'equal' else 'not '}{want!r}"
    if kind in ("matchRegex", "notMatchRegex"):
        if val is MISSING:
            return False, f"{where}: path not found"
        hit = re.search(p["pattern"], str(val)) is not None
        return (hit if kind == "matchRegex" else not hit), f"{where}: {val!r} vs /{p['pattern']}/"
    if kind in ("contains", "notContains"):
        if val is MISSING or not isinstance(val, list):
            return kind == "notContains" and val is MISSING, f"{where}: not a list ({val if val is not MISSING else 'missing'!r})"
        content = p["content"]
        n = sum(1 for e in val if (subset(content, e) if p.get("any") else e == content))
        if kind == "contains":
            ok = n == p["count"] if "count" in p else n > 0
        else:
            ok = n == 0
        return ok, f"{where}: {n} element(s) match {content!r} in {val!r}"
    if kind in ("exists", "notExists"):
        there = val is not MISSING
        return (there if kind == "exists" else not there), f"{where}: {'exists' if there else 'does not exist'}"
    if kind in ("isNullOrEmpty", "isNotNullOrEmpty", "isEmpty", "isNotEmpty"):
        empty = val is MISSING or val in (None, "", 0, [], {})
        return (empty if kind in ("isNullOrEmpty", "isEmpty") else not empty), f"{where}: {val if val is not MISSING else 'missing'!r}"
    if kind == "isKind":
        return doc.get("kind") == p["of"], f"{where}: kind {doc.get('kind')!r}, expected {p['of']!r}"
    if kind == "isAPIVersion":
        return doc.get("apiVersion") == p["of"], f"{where}: apiVersion {doc.get('apiVersion')!r}"
    if kind in ("isSubset", "isNotSubset"):
        if val is MISSING:
            return kind == "isNotSubset", f"{where}: path not found"
        hit = subset(p["content"], val)
        return (hit if kind == "isSubset" else not hit), f"{where}: {p['content']!r} {'in' if hit else 'not in'} {val!r}"
    if kind == "lengthEqual":
        n = len(val) if isinstance(val, (list, dict)) else -1
        return n == p["count"], f"{where}: length {n}, expected {p['count']}"
    raise ValueError(f"unsupported assertion {kind}")


def run_assert(a, job, result):
    a = dict(a)
    negate = bool(a.pop("not", False))
    templates = [a.pop("template")] if "template" in a else job["templates"]
    index = a.pop("documentIndex", job.get("documentIndex"))
    selector = a.pop("documentSelector", job.get("documentSelector"))
    if len(a) != 1:
        return False, f"assertion needs exactly one type: {sorted(a)}"
    kind, p = next(iter(a.items()))
    p = p or {}

    def out(ok, msg):
        ok = ok != negate
        return ok, ("" if ok else ("[not] " if negate else "") + f"{kind}: {msg}")

    if kind == "failedTemplate":
        if result.ok:
            return out(False, "rendering succeeded")
        if "errorMessage" in p:
            return out(p["errorMessage"] in result.error, f"error {result.error!r} lacks {p['errorMessage']!r}")
        if "errorPattern" in p:
            return out(re.search(p["errorPattern"], result.error) is not None, f"error {result.error!r} !~ /{p['errorPattern']}/")
        return out(True, "")
    if kind == "notFailedTemplate":
        return out(result.ok, result.error)
    if not result.ok:
        return False, f"rendering failed: {result.error}"
    docs = select(result.docs, templates, None if kind == "hasDocuments" else index, selector)
    if kind == "hasDocuments":
        return out(len(docs) == p["count"], f"{len(docs)} documents in {templates}, expected {p['count']}")
    if kind == "containsDocument":
        hit = [d for d in docs if d.get("kind") == p["kind"] and d.get("apiVersion") == p["apiVersion"]
               and all((d.get("metadata") or {}).get(k) == p[k] for k in ("name", "namespace") if k in p)]
        return out(bool(hit), f"no {p['apiVersion']} {p['kind']} {p.get('name', '')} in {templates}")
    if not docs:
        return False, f"{kind}: no documents rendered by {templates}"
    for d in docs:
        ok, msg = check_doc(kind, p, d)
        if ok == negate:
            return out(ok, msg)
    return out(True, "")


# ---- suites --------------------------------------------------------------------------------

def jobs_of(suite_file):
    suite = yaml.safe_load(suite_file.read_text())
    for t in suite.get("tests", []):
        job = {
            "name": t.get("it", "?"),
            "values": list(suite.get("values", [])) + list(t.get("values", [])),
            "set": {**(suite.get("set") or {}), **(t.get("set") or {})},
            "templates": ([t["template"]] if "template" in t else t.get("templates")) or suite.get("templates", []),
            "release": {**(suite.get("release") or {}), **(t.get("release") or {})},
            "capabilities": {**(suite.get("capabilities") or {}), **(t.get("capabilities") or {})},
            "documentIndex": t.get("documentIndex"),
            "documentSelector": t.get("documentSelector"),
            "asserts": t.get("asserts", []),
        }
        yield suite.get("suite", suite_file.name), job


def run_job(chart, suite_file, job):
    result = render(chart, suite_file.parent, job)
    failures = []
    for i, a in enumerate(job["asserts"]):
        try:
            ok, msg = run_assert(a, job, result)
        except Exception as e:  # a malformed suite is a failure, not a crash
            ok, msg = False, f"{type(e).__name__}: {e}"
        if not ok:
            failures.append(f"assert #{i + 1} {msg}")
    if not job["asserts"]:
        failures.append("no asserts")
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("chart", nargs="?", default=str(ROOT / "charts" / "pfc"))
    ap.add_argument("-f", "--file", action="append", help="suite glob relative to the chart (default tests/*_test.yaml)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    chart = Path(args.chart).resolve()
    files = sorted({f for g in (args.file or ["tests/*_test.yaml"]) for f in chart.glob(g)})
    if not files:
        print(f"no suites under {chart}", file=sys.stderr)
        return 1
    work = [(f, s, j) for f in files for s, j in jobs_of(f)]
    if args.list:
        for f, s, j in work:
            print(f"{f.name}: {s}: {j['name']}")
        return 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda w: run_job(chart, w[0], w[2]), work))
    passed = failed = 0
    current = None
    for (f, s, j), failures in zip(work, results):
        if s != current:
            print(f"\n{f.name}: {s}")
            current = s
        if failures:
            failed += 1
            print(f"  FAIL {j['name']}")
            for m in failures:
                print(f"       {m}")
        else:
            passed += 1
            print(f"  ok   {j['name']}")
    print()
    print(f"unittest: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
