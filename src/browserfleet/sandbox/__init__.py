"""The per-session OS boundary: each browser in a sandbox of its own (uid, mount, pid and network
namespaces via bubblewrap, cgroup limits, a size-capped tmpfs workdir).

spec.py, etc.py and the pure halves of cgroups.py, mounts.py and uids.py compute what a sandbox is
from the settings; runner.py builds and tears it down; preflight.py says what a host lacks;
residue.py finds what a crashed run left behind.
"""
