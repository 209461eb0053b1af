"""The committed stubs in src/pfc/ are what tools/generate.py makes from proto/ today."""

import subprocess
import sys
from pathlib import Path

import pytest


def test_generated_stubs_are_fresh():
    """Fails when a .proto changed without `python sdks/python/tools/generate.py`."""
    pytest.importorskip("grpc_tools")
    tool = Path(__file__).resolve().parent.parent / "tools" / "generate.py"
    r = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
