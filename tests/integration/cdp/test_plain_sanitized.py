"""The compiled hot path (cdp/_plain.c) under AddressSanitizer and UndefinedBehaviorSanitizer.

It reads every client's frames, so an out-of-bounds read or write there, or undefined behaviour,
would be a hole in the server. This builds it with both sanitizers (gcc, as pip does), loads
that build in place of the installed one in a fresh interpreter with their runtimes preloaded,
and runs its tests and the relay's there: any finding aborts that interpreter, and the test
fails with the sanitizer's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import browserfleet.cdp

SOURCE = Path(browserfleet.cdp.__file__).parent / "_plain.c"
TESTS = Path(__file__).resolve().parents[2] / "unit" / "cdp"

# Runs in the sanitized interpreter: the sanitized build takes the installed module's name
# before anything imports it, then pytest runs the given tests. The marker line proves which
# build ran and that the ASan runtime was loaded.
RUNNER = """
import importlib.util, sys
path = sys.argv[1]
spec = importlib.util.spec_from_file_location("browserfleet.cdp._plain", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
sys.modules["browserfleet.cdp._plain"] = module
import pytest
code = pytest.main(["-q", "-p", "no:cacheprovider", "--capture=sys", *sys.argv[2:]])
import browserfleet.cdp._plain as used
maps = open("/proc/self/maps").read()
print("SANITIZED-BUILD-RAN", used.__file__ == path, "libasan" in maps)
sys.exit(code)
"""


def runtime(name: str) -> str:
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.path.isabs(found), f"gcc has no {name}: {found!r}"
    return found


def test_the_scanner_and_the_relay_pass_their_tests_under_asan_and_ubsan(tmp_path: Path) -> None:
    build = tmp_path / f"_plain{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(
        [
            "gcc",
            "-O1",
            "-g",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer",
            "-DON_STACK=0",  # every payload on the heap, exactly sized: one byte past is caught
            "-shared",
            "-fPIC",
            f"-I{sysconfig.get_path('include')}",
            str(SOURCE),
            "-o",
            str(build),
        ],
        check=True,
    )
    env = {
        **os.environ,
        "LD_PRELOAD": f"{runtime('libasan.so')} {runtime('libubsan.so')}",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",  # the interpreter's own are not ours
        "UBSAN_OPTIONS": "print_stacktrace=1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONMALLOC": "malloc",  # Python's objects too, each its own block
    }
    tests = [str(TESTS / "test_plain_method.py"), str(TESTS / "test_relay.py")]
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER, str(build), *tests],
        check=False,
        env=env,
        cwd=TESTS.parents[2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    # A sanitizer's report comes first on stderr, the interpreter's traceback after it.
    report = ran.stdout[-3000:] + ran.stderr[:6000] + "\n...\n" + ran.stderr[-2000:]
    assert ran.returncode == 0, report
    assert "SANITIZED-BUILD-RAN True True" in ran.stdout, report
    assert " passed" in ran.stdout and "failed" not in ran.stdout, report
