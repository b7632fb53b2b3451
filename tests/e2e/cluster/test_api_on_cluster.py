"""The API on a Ray cluster: a real `browserfleet serve --cluster` process (a driver of its
own, on PostgreSQL) places every session's browser on a slotted node: a warm pool per node,
sessions spread over the nodes, a clean 503 when every slot is taken, Playwright through the
gateway to each, uploads, recordings, downloads and the live view of a browser on a node, profiles
saved on one node and loaded on another, and a node lost (its raylet killed or frozen) ends its
sessions, billed, with their browsers gone.

Its own cluster (not the shared one the test process drives): a head without slots on
127.0.0.7, where the API process joins, and two workers of one slot each on .8 and .9, each
with its own data dir, so a session's files show which node runs it.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from api_checks import cost6, parse_time
from fleet_server import Server, metric, wait_for
from login_site import assert_logged_in, log_in, login_site, new_profile, read_state
from pages import DATA_BIN, PageServer
from postgres_cluster import PostgresCluster
from ray_cluster import (
    Nodes,
    cluster_api,
    join_worker,
    raylet_of,
    start_nodes,
    stop_processes,
)
from video import ffprobe
from websockets.sync.client import connect

from browserfleet.cluster.nodes import read_nodes
from browserfleet.sandbox.reach import browser_pid, processes
from browserfleet.sandbox.spec import UPLOADS as BROWSER_UPLOADS

pytestmark = pytest.mark.e2e

HEAD_IP = "127.0.0.7"
GCS_PORT = 6382
WORKERS = ("127.0.0.8", "127.0.0.9")
ONE_MINUTE_COST = Decimal("0.000333")


@pytest.fixture(scope="module")
def nodes(suite_resources: Any) -> Iterator[Nodes]:
    temp_dir: Path = suite_resources.new_data_dir()
    workers = {ip: (1, suite_resources.new_data_dir()) for ip in WORKERS}
    cluster = start_nodes(temp_dir, HEAD_IP, GCS_PORT, workers)
    try:
        yield cluster
    finally:
        stop_processes(temp_dir)


@pytest.fixture(scope="module")
def api(nodes: Nodes, postgres: PostgresCluster, suite_resources: Any) -> Iterator[Server]:
    with cluster_api(
        suite_resources,
        postgres,
        nodes,
        BROWSERFLEET_CLUSTER__POOL_PER_NODE="1",
        # A node that stops renewing ends its browsers 3 s after the last renewal.
        BROWSERFLEET_CLUSTER__LEASE_TTL_S="3",
        BROWSERFLEET_CLUSTER__LEASE_RENEW_S="0.5",
    ) as server:
        yield server


def node_of(nodes: Nodes, session_id: str) -> str | None:
    """The worker whose sessions dir holds this session's files."""
    for ip, data_dir in nodes.worker_dirs.items():
        if (data_dir / "sessions" / session_id).exists():
            return ip
    return None


def sandbox_uid(nodes: Nodes, session_id: str) -> int:
    """The sandbox uid of this session's browser: its workdir on its node is that uid's."""
    for data_dir in nodes.worker_dirs.values():
        with contextlib.suppress(FileNotFoundError):
            return (data_dir / "sessions" / session_id).stat().st_uid
    raise AssertionError(f"no workdir for session {session_id} on any node")


def browser_runs(uid: int) -> bool:
    """Whether a Chromium main process runs as this sandbox uid."""
    return browser_pid(uid) is not None


def uid_gone(uid: int) -> bool:
    """Whether no process at all runs as this sandbox uid any more."""
    return not processes(uid)


def file_input_takes(playwright: Any, cdp_url: str, path: str) -> list[str]:
    """What a file input holds (name:size) once given `path` as Puppeteer gives it
    (DOM.setFileInputFiles, through the gateway's policy)."""
    browser = playwright.chromium.connect_over_cdp(cdp_url, timeout=20_000)
    try:
        page = browser.contexts[0].new_page()
        page.set_content("<input type=file id=f>")
        cdp = page.context.new_cdp_session(page)
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": "#f"})["nodeId"]
        cdp.send("DOM.setFileInputFiles", {"files": [path], "nodeId": node})
        return list(
            page.evaluate(
                "Array.from(document.getElementById('f').files, f => f.name + ':' + f.size)"
            )
        )
    finally:
        browser.close()


def free_slots(nodes: Nodes) -> dict[str, int]:
    return {n.ip: n.slots_free for n in read_nodes(nodes.address) if n.alive and n.slots_total}


def wait_for_warm_pool(api: Server, nodes: Nodes) -> None:
    """Until a warm browser is ready on each node, holding its one slot."""
    wait_for(
        lambda: metric(api, "browserfleet_pool_ready") == len(WORKERS),
        90,
        what="a ready pooled browser per node",
    )
    assert free_slots(nodes) == dict.fromkeys(WORKERS, 0)


def create(server: Server, **body: Any) -> dict[str, Any]:
    with server.http() as client:
        resp = client.post("/browsers", json={"timeout": 5, **body})
    assert resp.status_code == 201, f"{resp.text}\n{server.log_tail(30)}"
    return dict(resp.json())


def stop(server: Server, session_id: str) -> None:
    with server.http() as client:
        assert client.patch(f"/browsers/{session_id}", json={"action": "stop"}).status_code == 200


def profile_view(server: Server, profile_id: str) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/profiles/{profile_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def read(server: Server, session_id: str) -> dict[str, Any]:
    with server.http() as client:
        return dict(client.get(f"/browsers/{session_id}").json())


def test_sessions_take_warm_browsers_on_each_node_and_a_full_cluster_answers_503(
    api: Server, nodes: Nodes, playwright: Any
) -> None:
    # One warm browser per node holds each node's one slot.
    wait_for_warm_pool(api, nodes)
    views = [create(api), create(api)]
    placed = {node_of(nodes, v["id"]) for v in views}
    assert placed == set(WORKERS), "one session on each node"

    with PageServer() as pages:
        for view in views:
            browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
            try:
                page = browser.contexts[0].new_page()
                page.goto(pages.url("/"))
                assert page.inner_text("#greeting") == "Hello from loopback"
            finally:
                browser.close()

    # Every slot is a session's: refused at once, nothing charged, nothing left pending.
    with api.http() as client:
        refused = client.post("/browsers", json={"timeout": 5})
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("retry-after")
        account = client.get("/billing/account").json()
        assert account["activeSessionCount"] == 2
    assert free_slots(nodes) == dict.fromkeys(WORKERS, 0)

    # An upload is received here, then handed to the browser's node.
    with api.http() as client:
        upload = client.post(
            f"/browsers/{views[0]['id']}/uploads",
            files={"file": ("../cv.txt", b"my cv", "text/plain")},
        )
        assert upload.status_code == 201, upload.text
    # The file went to the browser's node: the browser takes it from its upload area.
    (uploaded,) = upload.json()["files"]
    assert (uploaded["name"], uploaded["size"]) == ("cv.txt", 5)
    assert uploaded["path"] == str(BROWSER_UPLOADS / "cv.txt")
    assert file_input_takes(playwright, views[0]["cdpUrl"], uploaded["path"]) == ["cv.txt:5"]

    # A stopped session's browser goes and its slot serves the next create.
    first = views[0]
    gone_from = node_of(nodes, first["id"])
    uid = sandbox_uid(nodes, first["id"])
    assert browser_runs(uid)
    stop(api, first["id"])
    wait_for(lambda: uid_gone(uid), 20, what="the browser to go")
    wait_for(lambda: node_of(nodes, first["id"]) is None, 20, what="its files to go")
    again = create(api)
    assert node_of(nodes, again["id"]) == gone_from
    for view in (views[1], again):
        stop(api, view["id"])
    wait_for(
        lambda: all(read(api, v["id"])["status"] == "stopped" for v in (views[1], again)),
        20,
        what="both stopped",
    )


def test_a_node_lost_with_its_raylet_ends_its_sessions_billed_and_its_browsers_go(
    api: Server, nodes: Nodes
) -> None:
    wait_for_warm_pool(api, nodes)
    views = {node_of(nodes, v["id"]): v for v in (create(api), create(api))}
    assert set(views) == set(WORKERS)
    lost, kept = views[WORKERS[1]], views[WORKERS[0]]
    lost_uid = sandbox_uid(nodes, lost["id"])
    assert browser_runs(lost_uid)
    raylet = raylet_of(nodes.temp_dir, WORKERS[1])
    assert raylet is not None
    killed_at = datetime.now(UTC)
    raylet.send_signal(signal.SIGKILL)

    settled = wait_for(
        lambda: (v := read(api, lost["id"]))["status"] == "stopped" and v,
        30,
        what="the lost node's session to stop",
    )
    assert parse_time(settled["startedAt"]) <= parse_time(settled["finishedAt"])
    assert parse_time(settled["finishedAt"]) >= killed_at
    assert cost6(settled["browserCost"]) == ONE_MINUTE_COST
    wait_for(lambda: uid_gone(lost_uid), 20, what="its browser to go")
    assert node_of(nodes, lost["id"]) == WORKERS[1]  # its files are still on the dead node

    # The node joins again: its first actor sweeps what the lost ones left.
    join_worker(nodes, WORKERS[1], 1)
    wait_for(
        lambda: node_of(nodes, lost["id"]) is None,
        60,
        what="the node's next actor to remove the lost session's files",
    )

    # The other node's session runs on.
    assert read(api, kept["id"])["status"] == "active"
    assert httpx.get(f"{kept['cdpUrl']}/json/version", timeout=10).status_code == 200
    stop(api, kept["id"])
    with api.http() as client:
        assert wait_for(
            lambda: client.get("/billing/account").json()["activeSessionCount"] == 0,
            20,
            what="no session active",
        )


def test_a_frozen_node_ends_its_own_browsers_and_its_sessions_are_billed(
    api: Server, nodes: Nodes
) -> None:
    """SIGSTOP of a raylet leaves its workers, and so their browsers, running: Ray alone
    would keep them. The head declares the node dead, the API stops its sessions, and the
    node's own side of each lease, no longer renewed, ends the browsers."""
    if raylet_of(nodes.temp_dir, WORKERS[1]) is None:  # lost in the test before
        join_worker(nodes, WORKERS[1], 1)
    wait_for_warm_pool(api, nodes)
    views = {node_of(nodes, v["id"]): v for v in (create(api), create(api))}
    assert set(views) == set(WORKERS)
    frozen, kept = views[WORKERS[0]], views[WORKERS[1]]
    frozen_uid = sandbox_uid(nodes, frozen["id"])
    assert browser_runs(frozen_uid)
    raylet = raylet_of(nodes.temp_dir, WORKERS[0])
    assert raylet is not None
    frozen_at = datetime.now(UTC)
    raylet.send_signal(signal.SIGSTOP)
    try:
        settled = wait_for(
            lambda: (v := read(api, frozen["id"]))["status"] == "stopped" and v,
            10,
            what="the frozen node's session to stop",
        )
        assert parse_time(settled["finishedAt"]) >= frozen_at
        assert cost6(settled["browserCost"]) == ONE_MINUTE_COST
        elapsed = (datetime.now(UTC) - frozen_at).total_seconds()
        wait_for(lambda: uid_gone(frozen_uid), max(10 - elapsed, 0.5), what="its browser to go")
        assert raylet.status() == psutil.STATUS_STOPPED  # the node ended them itself
    finally:
        raylet.send_signal(signal.SIGCONT)

    assert read(api, kept["id"])["status"] == "active"
    assert httpx.get(f"{kept['cdpUrl']}/json/version", timeout=10).status_code == 200
    stop(api, kept["id"])
    with api.http() as client:
        assert wait_for(
            lambda: client.get("/billing/account").json()["activeSessionCount"] == 0,
            20,
            what="no session active",
        )


def test_a_profile_saved_on_one_node_loads_on_another(
    api: Server, nodes: Nodes, playwright: Any
) -> None:
    """Nodes never reach the blob store: a profile's archive goes to its node by value, and
    its state comes back packed by the node after the graceful close, for the API process to
    save. A login on one node is there in a session on the other."""
    for ip in WORKERS:  # a node lost in a test before joins again
        if raylet_of(nodes.temp_dir, ip) is None:
            join_worker(nodes, ip, 1)
    profile = new_profile(api)
    with login_site() as site:
        wait_for_warm_pool(api, nodes)
        first = create(api, profileId=profile)
        saved_on = node_of(nodes, first["id"])
        log_in(playwright, first, site, "alice")
        stop(api, first["id"])
        wait_for(lambda: profile_view(api, profile)["cookieDomains"], 30, what="the save")
        # A plain session holds the saving node's slot: the profile's cold launch can only
        # take the other node's (its warm browser gives its room up).
        wait_for_warm_pool(api, nodes)
        holders = [create(api), create(api)]
        keep = next(h for h in holders if node_of(nodes, h["id"]) == saved_on)
        for holder in holders:
            if holder is not keep:
                stop(api, holder["id"])
        wait_for(
            lambda: metric(api, "browserfleet_pool_ready") == 1,
            60,
            what="the freed slot's warm browser",
        )
        second = create(api, profileId=profile)
        assert node_of(nodes, second["id"]) not in (saved_on, None)
        assert_logged_in(read_state(playwright, second, site), "alice")
        stop(api, second["id"])
        stop(api, keep["id"])
    view = profile_view(api, profile)
    assert view["cookieDomains"] == ["127.0.0.1"] and view["lastUsedAt"]


def downloads(server: Server, session_id: str, **params: Any) -> dict[str, Any]:
    with server.http() as client:
        answer = client.get(f"/browsers/{session_id}/downloads", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def first_frame(server: Server, view_only_url: str) -> bytes:
    """The first frame the view-only live view's websocket sends."""
    query = view_only_url.split("?", 1)[1]
    frames = server.url.replace("http://", "ws://") + "/live/frames?" + query
    with connect(frames, open_timeout=10) as ws:
        frame = ws.recv(timeout=30)
    assert isinstance(frame, bytes)
    return frame


def test_a_browser_on_a_node_is_recorded_watched_and_its_downloads_kept(
    api: Server, nodes: Nodes, playwright: Any
) -> None:
    """The recording and the downloads live on the browser's node, recorded, named and limited
    there as on a single host; the API process fetches them for its store. The live view
    watches the browser through its node's forwarder."""
    for ip in WORKERS:  # a node lost in a test before joins again
        if raylet_of(nodes.temp_dir, ip) is None:
            join_worker(nodes, ip, 1)
    wait_for_warm_pool(api, nodes)
    view = create(api, enableRecording=True)
    sid = view["id"]
    assert node_of(nodes, sid) in WORKERS
    began = time.monotonic()
    with PageServer() as pages:
        browser = playwright.chromium.connect_over_cdp(view["cdpUrl"], timeout=20_000)
        try:
            context = browser.contexts[0]
            page = context.pages[0] if context.pages else context.new_page()
            page.goto(pages.url("/downloads"))
            with page.expect_download() as event:
                page.click("#link")
            assert event.value.failure() is None  # Playwright saw it complete
            # Listed by its real name while it runs: named by its node, listed through it.
            listed = wait_for(
                lambda: downloads(api, sid)["files"] or None, 30, what="the download listed"
            )
            assert [(f["path"], f["size"]) for f in listed] == [("data.bin", len(DATA_BIN))]
            (served,) = downloads(api, sid, includeUrls="true")["files"]
            assert httpx.get(served["url"], timeout=30).content == DATA_BIN
            page.goto(pages.url("/animated"))
            assert first_frame(api, view["viewOnlyLiveUrl"]).startswith(b"\xff\xd8")  # JPEG
        finally:
            browser.close()
    session_s = time.monotonic() - began
    stop(api, sid)
    ready = wait_for(
        lambda: (v := read(api, sid))["recordingUrl"] and v, 60, what="the recording URL"
    )
    assert ready["recordingAvailable"] is True
    video = httpx.get(ready["recordingUrl"], timeout=60)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    probed = ffprobe(video.content)
    assert probed["streams"][0]["codec_name"] == "h264"
    assert 0 < float(probed["format"]["duration"]) <= session_s + 5
    # Kept in the store: listed and served once its node's files are gone.
    wait_for(lambda: node_of(nodes, sid) is None, 30, what="the node's files to go")
    (kept,) = downloads(api, sid, includeUrls="true")["files"]
    assert kept["path"] == "data.bin"
    assert httpx.get(kept["url"], timeout=30).content == DATA_BIN
    for data_dir in nodes.worker_dirs.values():  # nothing of the recording left on the node
        assert not list((data_dir / "recording-work").glob(f"{sid}*"))


LATE_WORKER = "127.0.0.10"


def test_a_node_that_joins_gets_warm_browsers_of_its_own(
    api: Server, nodes: Nodes, suite_resources: Any
) -> None:
    """POOL_PER_NODE warm browsers for every node with slots, one that joins after the API
    process started too. Last in this module: the cluster has three nodes from here on."""
    for ip in WORKERS:  # a node lost in a test before joins again
        if raylet_of(nodes.temp_dir, ip) is None:
            join_worker(nodes, ip, 1)
    wait_for_warm_pool(api, nodes)
    nodes.worker_dirs[LATE_WORKER] = suite_resources.new_data_dir()
    join_worker(nodes, LATE_WORKER, 1)
    wait_for(
        lambda: metric(api, "browserfleet_pool_ready") == len(WORKERS) + 1,
        90,
        what="a warm browser on the node that joined",
    )
    assert free_slots(nodes) == dict.fromkeys((*WORKERS, LATE_WORKER), 0)
