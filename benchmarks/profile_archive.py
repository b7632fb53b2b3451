"""Profile archives: pack/unpack time and size of a real Chromium profile, per format and level.

Run: python -m benchmarks.profile_archive [--idb-mb 5] [-n 5]. A Chromium with browserfleet's
switches and a fresh profile opens a loopback page that sets an HttpOnly persistent cookie, a
session cookie, localStorage and --idb-mb MB of IndexedDB (half random bytes, half JSON text);
it is closed gracefully (CDP Browser.close, so every store is flushed) and its profile is packed
and unpacked with browserfleet.storage.archive in each format, alternating, -n times each.
Sizes are exact; times are medians and vary with the machine: compare the rows.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

from playwright.async_api import async_playwright

if __package__ in (None, ""):  # run as a file: python benchmarks/profile_archive.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import harness
from browserfleet.storage.archive import ArchiveLimits, pack, unpack
from browserfleet.storage.archive_format import ArchiveFormat
from browserfleet.storage.selection import PathFilter

# What a profile needs to be a profile (cookies, storage, passwords, preferences) is kept;
# what Chromium rebuilds or only needs while running is left out.
STATE_ONLY = PathFilter(
    exclude=(
        "Cache",
        "Code Cache",
        "GPUCache",
        "DawnGraphiteCache",
        "DawnWebGPUCache",
        "GrShaderCache",
        "GraphiteDawnCache",
        "ShaderCache",
        "GPUPersistentCache",
        "component_crx_cache",
        "extensions_crx_cache",
        "Crashpad",
        "Crash Reports",
        "BrowserMetrics",
        "BrowserMetrics-spare.pma",
        "Safe Browsing",
        "segmentation_platform",
        "optimization_guide_model_store",
        "Singleton*",
        "DevToolsActivePort",
        "*.tmp",
        "LOCK",
    )
)
VARIANTS: tuple[tuple[ArchiveFormat, int], ...] = (
    (ArchiveFormat.TAR_GZ, 1),
    (ArchiveFormat.TAR_GZ, 6),
    (ArchiveFormat.TAR_ZST, 1),
    (ArchiveFormat.TAR_ZST, 3),
    (ArchiveFormat.TAR_ZST, 9),
)
LIMITS = ArchiveLimits(max_bytes=4 * 1024**3)
MIB = 1024 * 1024
CLOSE_TIMEOUT_S = 30.0


def state_page(idb_mb: int) -> bytes:
    return f"""<!doctype html><title>working</title><script>
(async () => {{
  document.cookie = "visit=session-cookie; path=/";
  document.cookie = "theme=dark; max-age=86400; path=/";
  for (let i = 0; i < 200; i++) localStorage.setItem("key" + i, "value " + i + " ".repeat(100));
  const db = await new Promise((ok, fail) => {{
    const open = indexedDB.open("bench", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("items");
    open.onsuccess = () => ok(open.result);
    open.onerror = () => fail(open.error);
  }});
  const tx = db.transaction("items", "readwrite");
  const items = tx.objectStore("items");
  for (let i = 0; i < {idb_mb} * 4; i++) {{
    const random = new Uint8Array(128 * 1024);
    for (let at = 0; at < random.length; at += 65536)
      crypto.getRandomValues(random.subarray(at, at + 65536));
    const rows = [];
    for (let j = 0; rows.length < 1800; j++)
      rows.push({{id: i * 2000 + j, name: "item " + j, tags: ["a", "b", "c"], price: j * 1.5}});
    items.put({{random, text: JSON.stringify(rows)}}, i);
  }}
  await new Promise((ok) => (tx.oncomplete = ok));
  document.title = "done";
}})();
</script>""".encode()


class _StateHandler(BaseHTTPRequestHandler):
    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("Set-Cookie", "login=secret-token; HttpOnly; Max-Age=86400; Path=/")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def state_site(idb_mb: int) -> Iterator[str]:
    handler = type("Handler", (_StateHandler,), {"body": state_page(idb_mb)})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="state-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def make_profile(chromium: Path, url: str, dest: Path) -> None:
    """A real profile: browse `url` until it says done, close Chromium gracefully, keep it."""
    bare = await harness.BareChromium.launch(chromium)
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.connect_over_cdp(bare.http_url)
            page = browser.contexts[0].pages[0]
            await page.goto(url)
            await page.wait_for_function("document.title === 'done'", timeout=120_000)
            session = await browser.new_browser_cdp_session()
            try:
                await session.send("Browser.close")
            except Exception as error:  # the connection may drop before the answer
                harness.log(f"Browser.close: {type(error).__name__} (expected)")
        await asyncio.wait_for(bare.process.wait(), CLOSE_TIMEOUT_S)
        shutil.copytree(bare.profile_dir, dest, symlinks=True)
    finally:
        await bare.stop()


def tree_size(root: Path, select: PathFilter | None = None) -> tuple[int, int]:
    files = size = 0
    for directory, dirs, names in os.walk(root):
        rel = Path(directory).relative_to(root).as_posix()
        base = "" if rel == "." else rel + "/"
        if select is not None:
            dirs[:] = [d for d in dirs if not select.excluded(base + d)]
        for name in names:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue
            if select is None or select.keeps_file(base + name):
                files += 1
                size += path.stat().st_size
    return files, size


@dataclass(slots=True)
class Row:
    archive_format: ArchiveFormat
    level: int
    size: int = 0
    pack_s: list[float] = field(default_factory=list)
    unpack_s: list[float] = field(default_factory=list)


def measure(profile: Path, work: Path, rows: list[Row], runs: int) -> None:
    for run in range(runs):
        for row in rows:  # alternating rows: drift on a busy machine hits them all alike
            archive = work / f"{run}-{row.level}{row.archive_format.suffix}"
            target = work / f"{run}-{row.level}-{row.archive_format.value}"
            started = time.perf_counter()
            stats = pack(
                profile,
                archive,
                limits=LIMITS,
                select=STATE_ONLY,
                archive_format=row.archive_format,
                level=row.level,
            )
            row.pack_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            unpack(archive, target, limits=LIMITS)
            row.unpack_s.append(time.perf_counter() - started)
            row.size = stats.archive_bytes
            archive.unlink()
            shutil.rmtree(target)


def report(profile: Path, rows: list[Row], idb_mb: int) -> None:
    all_files, all_bytes = tree_size(profile)
    files, state_bytes = tree_size(profile, STATE_ONLY)
    print(harness.machine_line())
    print(
        f"profile with {idb_mb} MB of IndexedDB: {all_files} files, {all_bytes / MIB:.1f} MiB; "
        f"state only (caches etc. left out): {files} files, {state_bytes / MIB:.1f} MiB"
    )
    table = []
    for row in rows:
        table.append(
            [
                f"{row.archive_format.value} level {row.level}",
                f"{row.size / MIB:.2f}",
                f"{row.size / state_bytes:.2f}",
                f"{statistics.median(row.pack_s) * 1000:.0f}",
                f"{statistics.median(row.unpack_s) * 1000:.0f}",
            ]
        )
    headers = ["format", "MiB", "size ratio", "pack ms (p50)", "unpack ms (p50)"]
    harness.print_table("pack and unpack of the state-only profile", headers, table)


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-archive-"))
    try:
        profile = work / "profile"
        with state_site(args.idb_mb) as url:
            await make_profile(args.chromium, url, profile)
        rows = [Row(fmt, level) for fmt, level in VARIANTS]
        measure(profile, work, rows, args.runs)
        report(profile, rows, args.idb_mb)
        if args.show_tree:
            for path in sorted(profile.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    print(f"{path.stat().st_size:>10}  {path.relative_to(profile)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--runs", type=int, default=5, help="measured runs per row (5)")
    parser.add_argument("--idb-mb", type=int, default=5, help="MB the page puts in IndexedDB")
    parser.add_argument("--chromium", type=Path, default=harness.DEFAULT_CHROMIUM)
    parser.add_argument("--show-tree", action="store_true", help="list the profile's files")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.idb_mb < 0:
        parser.error("--runs must be at least 1 and --idb-mb not negative")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
