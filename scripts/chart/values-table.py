#!/usr/bin/env python3
"""Generate the values table of charts/pfc/README.md from the `# --` comments of values.yaml
(the helm-docs convention, without needing helm-docs).

  values-table.py            rewrite the table between the markers in the README
  values-table.py --check    exit 1 if the README table is stale or a value has no `# --` comment

A `# -- text` comment (continued by the following `#` lines) documents the key right below it.
A key needs a comment unless it is a mapping whose keys are all documented.
"""
import json
import re
import sys
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parents[2] / "charts" / "pfc"
VALUES = CHART / "values.yaml"
README = CHART / "README.md"
START, END = "<!-- values-table:start -->", "<!-- values-table:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z0-9_.\-/]+|\"[^\"]+\"):(\s.*|)$")


def parse():
    docs, stack, pending = {}, [], None
    for line in VALUES.read_text().splitlines():
        s = line.strip()
        if s.startswith("# --"):
            pending = [s[4:].strip()]
            continue
        if s.startswith("#"):
            if pending is not None:
                pending.append(s[1:].strip())
            continue
        m = KEY.match(line)
        if not m or s.startswith("-"):
            continue
        indent, key = len(m.group(1)), m.group(2).strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        if pending is not None:
            docs[".".join(k for _, k in stack)] = " ".join(pending)
            pending = None
    return docs


def get(values, path):
    node = values
    for part in path.split("."):
        node = node[part]
    return node


def undocumented(values, docs, prefix=""):
    missing = []
    for k, v in values.items():
        path = f"{prefix}{k}"
        if path in docs:
            continue
        if isinstance(v, dict) and v:
            missing += undocumented(v, docs, path + ".")
        else:
            missing.append(path)
    return missing


def table(values, docs):
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for path, text in docs.items():
        v = get(values, path)
        kind = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "object"}.get(type(v), "string")
        default = json.dumps(v, separators=(",", ":")) if v not in ("", None) else '`""`'
        if default != '`""`':
            default = "`" + default.replace("|", "\\|") + "`"
        desc = text.replace("|", "\\|")
        rows.append(f"| `{path}` | {kind} | {default} | {desc} |")
    return "\n".join(rows)


def main():
    values = yaml.safe_load(VALUES.read_text())
    docs = parse()
    missing = undocumented(values, docs)
    readme = README.read_text()
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{table(values, docs)}\n{END}{tail}"
    if "--check" in sys.argv:
        ok = True
        if missing:
            print("values without a `# --` comment: " + ", ".join(missing), file=sys.stderr)
            ok = False
        if new != readme:
            print("charts/pfc/README.md values table is stale: run scripts/chart/values-table.py", file=sys.stderr)
            ok = False
        sys.exit(0 if ok else 1)
    if missing:
        print("warning: values without a `# --` comment: " + ", ".join(missing), file=sys.stderr)
    README.write_text(new)
    print(f"{README}: {len(docs)} values")


if __name__ == "__main__":
    main()
