"""`browserfleet leftovers`: what dead servers left of their sandboxes on this host (processes of
the sandbox uid range, workdir mounts, cgroups), never counting a live server's sandboxes.
`--clean` removes it, as a restarted server would; the exit code is 1 while anything is left.
"""

from __future__ import annotations

import argparse
import sys

from browserfleet.bootstrap import sandbox_config
from browserfleet.sandbox.residue import find_residue
from browserfleet.sandbox.runner import LOCKS_DIR, SandboxRunner
from browserfleet.sandbox.uids import UidLocks
from browserfleet.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--clean", action="store_true", help="remove them (kill, unmount, delete cgroups)"
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    config = sandbox_config(settings)
    if args.clean:
        runner = SandboxRunner(config)
        runner.sweep(settings.sessions_dir, frozenset())
    locks = UidLocks(config.run_dir / LOCKS_DIR, config.uids)
    found = find_residue(config.uids)
    left = found.without({uid for uid in found.uids() if locks.held(uid)})
    lines = left.lines()
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    if not lines:
        sys.stdout.write(f"no sandbox leftovers for uids {config.uids}\n")
    return 1 if lines else 0
