import sys
from pathlib import Path

# tests/fake.py and tests/e2e helpers import as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
