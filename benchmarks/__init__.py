"""Reproducible speed measurements of browserfleet, each against a baseline run alongside.

The benchmarks share the test suite's support modules (tests/support: the server-process harness,
the loopback page server, free_port and the resolver rule), so a benchmark's server is started,
awaited and stopped exactly as an e2e test's is. Those modules are plain top-level modules (that
is how pytest imports them), so the folder goes onto the import path here, before any benchmark
module imports them.
"""

import sys
from pathlib import Path

SUPPORT = str(Path(__file__).resolve().parent.parent / "tests" / "support")
if SUPPORT not in sys.path:
    sys.path.append(SUPPORT)
