#!/usr/bin/env python3
"""Generates the gRPC stubs in src/pfc/ from ../../proto (the one source of truth).

    python tools/generate.py          # rewrite src/pfc/{jobs,worker}/v1/*_pb2*.py(i)
    python tools/generate.py --check  # exit 1 if the committed stubs are stale

Needs grpcio-tools (pinned in requirements-dev.txt); no system protoc.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PKG = HERE.parent / "src"
PROTO = HERE.parent.parent.parent / "proto"
# The services the SDK talks to; their packages land in src/pfc/<service>/v1/.
FILES = ["pfc/jobs/v1/jobs.proto", "pfc/worker/v1/worker.proto"]
OUTPUTS = ["_pb2.py", "_pb2.pyi", "_pb2_grpc.py"]


def generate(out: Path) -> None:
    from grpc_tools import protoc
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *FILES,
    ]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for base in FILES:
            stem = base.removesuffix(".proto")
            for suffix in OUTPUTS:
                new, old = Path(tmp, stem + suffix), PKG / (stem + suffix)
                if old.exists() and filecmp.cmp(new, old, shallow=False):
                    continue
                stale.append(old.relative_to(HERE.parent))
                if not check:
                    old.parent.mkdir(parents=True, exist_ok=True)
                    old.write_bytes(new.read_bytes())
            # Package markers for every directory level of the generated module.
            for d in Path(stem).parents:
                if d != Path("."):
                    marker = PKG / d / "__init__.py"
                    if not marker.exists():
                        stale.append(marker.relative_to(HERE.parent))
                        if not check:
                            marker.write_text("")
    if check and stale:
        print("stale generated stubs (run: python sdks/python/tools/generate.py):", file=sys.stderr)
        for p in stale:
            print(f"  {p}", file=sys.stderr)
        return 1
    if not check:
        print(f"{len(stale)} file(s) written" if stale else "stubs up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
