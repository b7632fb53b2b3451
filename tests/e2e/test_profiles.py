"""Persistent profiles with real Chromium: a login on a loopback origin survives every way a
session ends (stop, timeout, SIGTERM), concurrent sessions, a kill -9 during a save, and a
second server sharing the database and an S3 bucket."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_checks import parse_time
from fleet_server import Janitor, Server, base_env, wait_for
from login_site import State, assert_logged_in, log_in, login_site, new_profile, read_state
from loopback import free_port
from s3_server import S3TestServer

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with login_site() as url:
        yield url


def stop(server: Server, session_id: str, key: str | None = None) -> dict[str, Any]:
    with server.http(key) as client:
        answer = client.patch(f"/browsers/{session_id}", json={"action": "stop"})
    assert answer.status_code == 200 and answer.json()["status"] == "stopped", answer.text
    return dict(answer.json())


def profile_view(server: Server, profile_id: str, key: str | None = None) -> dict[str, Any]:
    with server.http(key) as client:
        answer = client.get(f"/profiles/{profile_id}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def saved(server: Server, profile_id: str, count: int) -> bool:
    """The server's log says the profile was saved `count` times."""
    log = server.log_path.read_text(errors="replace")
    return log.count(f"profile {profile_id} saved") >= count


def saves_settled(server: Server, profile_id: str, count: int) -> bool:
    """The server's log says `count` saves of the profile are over: published, or dropped
    because a session that stopped later had published first."""
    log = server.log_path.read_text(errors="replace")
    dropped = f"profile {profile_id} deleted or saved by a later session: save dropped"
    return log.count(f"profile {profile_id} saved") + log.count(dropped) >= count


def test_a_login_survives_a_stop_and_loads_in_the_next_session(
    server: Server, janitor: Janitor, playwright: Any, site: str
) -> None:
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "alice")
    stop(server, first["id"])
    second = janitor.create(server, profileId=profile)  # waits for the save in flight
    assert_logged_in(read_state(playwright, second, site), "alice")
    view = profile_view(server, profile)
    assert view["cookieDomains"] == ["127.0.0.1"]
    assert parse_time(view["lastUsedAt"]) >= parse_time(second["startedAt"])
    stop(server, second["id"])
    # A fresh profile starts empty: nothing of another profile leaks into it.
    other = janitor.create(server, profileId=new_profile(server))
    state = read_state(playwright, other, site)
    assert state == State({}, None, None)
    stop(server, other["id"])


def site_engagement(server: Server, session_id: str) -> dict[str, Any]:
    """The per-site engagement Chromium keeps in the profile's Preferences (a content setting
    it records for the sites a user visits)."""
    path = profile_files(server, session_id) / "Preferences"
    prefs = json.loads(path.read_text()) if path.exists() else {}  # none yet in a fresh one
    exceptions = prefs.get("profile", {}).get("content_settings", {}).get("exceptions", {})
    return dict(exceptions.get("site_engagement", {}))


def test_a_preference_chromium_wrote_loads_in_the_next_session(
    server: Server, janitor: Janitor, playwright: Any, site: str
) -> None:
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "prefs")
    stop(server, first["id"])
    second = janitor.create(server, profileId=profile)  # waits for the save in flight
    # The next browser starts from a Preferences file holding what Chromium recorded for the
    # site in the first session; a fresh profile holds nothing for it.
    assert site in {key.split(",")[0] for key in site_engagement(server, second["id"])}
    fresh = janitor.create(server, profileId=new_profile(server))
    assert site not in {key.split(",")[0] for key in site_engagement(server, fresh["id"])}
    stop(server, second["id"])
    stop(server, fresh["id"])


def test_another_projects_session_cannot_load_the_profile(server: Server, janitor: Janitor) -> None:
    profile = new_profile(server)
    _name, key = server.new_project()
    with server.http(key) as client:
        answer = client.post("/browsers", json={"profileId": profile})
    assert (answer.status_code, answer.json()) == (404, {"detail": "Profile not found"})


def test_a_login_survives_a_server_shutdown(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any, site: str
) -> None:
    server = make_server()
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "sigterm")
    assert server.stop(signal.SIGTERM, timeout=60) in (0, -signal.SIGTERM)
    assert saved(server, profile, 1), server.log_tail()
    server.restart()
    second = janitor.create(server, profileId=profile)
    assert_logged_in(read_state(playwright, second, site), "sigterm")


def test_concurrent_sessions_last_to_stop_wins(
    server: Server, janitor: Janitor, playwright: Any, site: str
) -> None:
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "base")
    stop(server, first["id"])
    a = janitor.create(server, profileId=profile)
    b = janitor.create(server, profileId=profile)
    for view in (a, b):  # each started from the version current at its start
        assert_logged_in(read_state(playwright, view, site), "base")
    log_in(playwright, a, site, "from-a")
    log_in(playwright, b, site, "from-b")
    stop(server, a["id"])
    stop(server, b["id"])
    # Both saves run at once: whichever publishes first, b's is the version (it stopped last).
    wait_for(lambda: saves_settled(server, profile, 3), 60, what="both saves")
    third = janitor.create(server, profileId=profile)
    assert_logged_in(read_state(playwright, third, site), "from-b")
    stop(server, third["id"])


def test_kill_9_during_a_save_leaves_the_previous_version_loadable(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any, site: str
) -> None:
    server = make_server()
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "v1")
    stop(server, first["id"])
    wait_for(lambda: saved(server, profile, 1), 60, what="the first save")
    second = janitor.create(server, profileId=profile)
    log_in(playwright, second, site, "v2")
    stop(server, second["id"])  # answers before the save: the browser is still closing
    server.kill9()
    assert not saved(server, profile, 2), "the save finished before the kill: test timing broke"
    server.restart()
    third = janitor.create(server, profileId=profile)
    assert_logged_in(read_state(playwright, third, site), "v1")
    stop(server, third["id"])


def profile_files(server: Server, session_id: str) -> Path:
    return server.data_dir / "sessions" / session_id / "profile" / "Default"


# Chromium's cookie times: microseconds since 1601-01-01 UTC.
CHROME_EPOCH_OFFSET_S = 11_644_473_600


def written(server: Server, session_id: str, value: str, since: float = 0.0) -> bool:
    """Whether Chromium has written the login to the session's profile on disk: the persistent
    cookie (set at or after the Unix time `since`) to its Cookies database (committed every
    30 s or so), `value` to localStorage (committed a few seconds after the page set it) and to
    IndexedDB (at once)."""
    default = profile_files(server, session_id)
    copy = server.data_dir / f"cookies-{session_id}"
    try:
        shutil.copyfile(default / "Cookies", copy)
        with contextlib.closing(sqlite3.connect(copy)) as db:
            after = int((since + CHROME_EPOCH_OFFSET_S) * 1_000_000)
            query = "SELECT name FROM cookies WHERE creation_utc >= ?"
            names = {n for (n,) in db.execute(query, (after,))}
        stores = [*(default / "Local Storage" / "leveldb").iterdir()]
        stores += [*(default / "IndexedDB").rglob("*.log")]
    except (OSError, sqlite3.Error):
        return False
    finally:
        copy.unlink(missing_ok=True)
    found = [f for f in stores if f.suffix in (".log", ".ldb") and value.encode() in _read(f)]
    return "keep" in names and {f.parent.parent.name for f in found} >= {
        "Local Storage",
        "IndexedDB",
    }


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def status(server: Server, session_id: str) -> str:
    with server.http() as client:
        return str(client.get(f"/browsers/{session_id}").json()["status"])


def test_a_crashed_browser_keeps_what_it_had_written_to_disk(
    server: Server, janitor: Janitor, playwright: Any, site: str
) -> None:
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "crashed")
    wait_for(lambda: written(server, first["id"], "crashed"), 90, what="the login on disk")
    server.browser_main_process(first["id"]).send_signal(signal.SIGKILL)
    wait_for(lambda: status(server, first["id"]) == "stopped", 30, what="the crash to end it")
    wait_for(lambda: saved(server, profile, 1), 60, what="the crashed session's save")
    second = janitor.create(server, profileId=profile)
    state = read_state(playwright, second, site)
    # What was on disk came back. (The session cookie may too: Chromium keeps a crashed
    # run's session cookies at the next start; nothing here depends on it.)
    assert (state.cookies.get("keep"), state.local, state.idb) == ("crashed",) * 3, state
    stop(server, second["id"])


def test_a_session_of_a_killed_server_is_saved_with_what_it_had_on_disk(
    make_server: Callable[..., Server], janitor: Janitor, playwright: Any, site: str
) -> None:
    """The restart adopts the dead server's session and ends it like a crashed browser's: its
    sandbox's processes are killed, but its files stay until the save has read them."""
    server = make_server()
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile)
    log_in(playwright, first, site, "v1")
    stop(server, first["id"])
    wait_for(lambda: saved(server, profile, 1), 60, what="the first save")
    second = janitor.create(server, profileId=profile)
    since = time.time()  # the v1 cookie loaded with the profile is older
    log_in(playwright, second, site, "v2")
    wait_for(lambda: written(server, second["id"], "v2", since), 90, what="the login on disk")
    server.kill9()  # the sandboxes die with it
    server.restart()  # adopts the dead server's session: stopped, billed, its end run
    wait_for(lambda: status(server, second["id"]) == "stopped", 30, what="the adoption")
    third = janitor.create(server, profileId=profile)  # waits for the adopted session's end
    state = read_state(playwright, third, site)
    log = [line for line in server.log_path.read_text().splitlines() if "profile" in line]
    assert saved(server, profile, 2), "\n".join(log)
    assert (state.cookies.get("keep"), state.local, state.idb) == ("v2",) * 3, "\n".join(log)
    # Then its files went: no mount, no directory left of it.
    workdir = server.data_dir / "sessions" / second["id"]
    wait_for(lambda: not workdir.exists(), 30, what="the adopted session's files to go")
    assert str(workdir) not in Path("/proc/self/mountinfo").read_text()
    stop(server, third["id"])


@pytest.mark.slow
def test_a_login_survives_a_timeout(
    server: Server, janitor: Janitor, playwright: Any, site: str
) -> None:
    profile = new_profile(server)
    first = janitor.create(server, profileId=profile, timeout=1)
    log_in(playwright, first, site, "timeout")

    def stopped() -> bool:
        with server.http() as client:
            return bool(client.get(f"/browsers/{first['id']}").json()["status"] == "stopped")

    wait_for(stopped, 90, interval=0.5, what="the timeout to stop the session")
    second = janitor.create(server, profileId=profile)
    assert_logged_in(read_state(playwright, second, site), "timeout")
    stop(server, second["id"])


def second_server(suite_resources: Any, first: Server, **env: str) -> Server:
    """Another server on the first one's database: it creates no initial key of its own."""
    server = Server(suite_resources.new_data_dir(), free_port(), base_env(**env))
    suite_resources.ports.add(server.port)
    (server.data_dir / "initial-api-key").write_text(first.key)
    return server.start()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3TestServer]:
    s3 = S3TestServer()
    s3.start()
    try:
        yield s3
    finally:
        s3.stop()


def test_a_profile_saved_on_one_server_loads_on_another_sharing_the_bucket_and_database(
    make_server: Callable[..., Server],
    janitor: Janitor,
    playwright: Any,
    site: str,
    s3: S3TestServer,
    tmp_path: Path,
    suite_resources: Any,
) -> None:
    bucket = f"profiles-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(bucket)
    shared = {
        "BROWSERFLEET_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "BROWSERFLEET_SERVER_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
        "BROWSERFLEET_STORAGE__BACKEND": "s3",
        "BROWSERFLEET_STORAGE__BUCKET": bucket,
        "BROWSERFLEET_STORAGE__ENDPOINT_URL": s3.url,
        "BROWSERFLEET_STORAGE__ACCESS_KEY_ID": s3.access_key_id,
        "BROWSERFLEET_STORAGE__SECRET_ACCESS_KEY": s3.secret_access_key,
        "BROWSERFLEET_STORAGE__ADDRESSING_STYLE": "path",
    }
    one = make_server(**shared)
    two = second_server(suite_resources, one, **shared)
    try:
        _name, key = one.new_project()
        profile = new_profile(one, key)
        first = janitor.create(one, key, profileId=profile)
        log_in(playwright, first, site, "roaming")
        stop(one, first["id"], key)
        second = janitor.create(two, key, profileId=profile)  # waits for one's save (the DB)
        assert_logged_in(read_state(playwright, second, site), "roaming")
        stop(two, second["id"], key)
        wait_for(lambda: saved(two, profile, 1), 60, what="the second server's save")
    finally:
        two.close()
    keys = [k for k in s3.raw_keys(bucket) if profile in k]
    assert len(keys) == 1 and keys[0].startswith("profiles/"), keys  # the old one collected
    with one.http(key) as client:
        assert client.delete(f"/profiles/{profile}").status_code == 204
    assert not [k for k in s3.raw_keys(bucket) if profile in k]
    s3.remove_bucket(bucket)


@pytest.mark.parametrize("version", ["v2", "v3", "v4"])
def test_the_official_sdk_profile_calls_work_unchanged(server: Server, version: str) -> None:
    import importlib

    sdk = importlib.import_module(f"browser_use_sdk.{version}")
    with sdk.BrowserUse(api_key=server.key, base_url=server.api(version), timeout=60) as client:
        user = uuid.uuid4().hex
        created = client.profiles.create(name="sdk", user_id=user)
        assert (created.name, created.user_id, created.cookie_domains) == ("sdk", user, None)
        assert client.profiles.get(created.id).id == created.id
        listed = client.profiles.list(query=user[:12], page_size=5, page_number=1)
        assert [p.id for p in listed.items] == [created.id] and listed.total_items == 1
        renamed = client.profiles.update(created.id, name="renamed")
        assert (renamed.name, renamed.user_id) == ("renamed", user)
        if version == "v4":  # the v4 SDK sends an explicit null to clear a field
            assert client.profiles.update(created.id, user_id=None).user_id is None
        client.profiles.delete(created.id)
        with pytest.raises(sdk.BrowserUseError) as refused:
            client.profiles.get(created.id)
        assert "Profile not found" in str(refused.value)
