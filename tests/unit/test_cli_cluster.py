"""`browserfleet cluster` arguments: what the parser accepts and refuses, and the status
table, without Ray."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from browserfleet.bootstrap import cluster_problem
from browserfleet.cli.cluster import status_lines
from browserfleet.cli.main import build_parser, main, settings_from
from browserfleet.cluster.nodes import NodeSlots
from browserfleet.settings import ClusterSettings


def test_up_head_takes_an_ip_and_a_port() -> None:
    args = build_parser().parse_args(["cluster", "up", "--head", "10.0.0.1", "--port", "6390"])
    assert (args.head, args.port, args.join) == ("10.0.0.1", 6390, None)


def test_up_join_takes_an_address_a_node_ip_and_slots() -> None:
    args = build_parser().parse_args(
        ["cluster", "up", "--join", "10.0.0.1:6390", "--node-ip", "10.0.0.7", "--slots", "4"]
    )
    assert (args.join, args.node_ip, args.slots, args.head) == (
        "10.0.0.1:6390",
        "10.0.0.7",
        4,
        None,
    )


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["cluster", "up"], "one of the arguments --head --join is required"),
        (["cluster", "up", "--head", "10.0.0.1", "--join", "10.0.0.1:1"], "not allowed with"),
        (["cluster", "up", "--head", "head.internal"], "'head.internal' is not an IP address"),
        (["cluster", "up", "--head", "10.0.0.1", "--port", "0"], "'0' is not a port"),
        (["cluster", "up", "--join", "10.0.0.1"], "is not host:port"),
        (["cluster", "up", "--join", "h:1", "--node-ip", "x", "--slots", "1"], "not an IP"),
        (["cluster", "up", "--join", "h:1", "--node-ip", "10.0.0.7", "--slots", "0"], "≥ 1"),
        (["cluster", "up", "--join", "h:1", "--node-ip", "10.0.0.7", "--slots", "two"], "≥ 1"),
        (["cluster", "down", "--address", "10.0.0.1"], "is not host:port"),
        (["cluster", "down", "--node-ip", "10.0.0"], "is not an IP address"),
        (["cluster", "status", "--address", "10.0.0.1:99999"], "the port must be 1-65535"),
        (["cluster"], "required: cluster_command"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(argv)
    assert exit_.value.code == 2
    assert said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--head", "10.0.0.1", "--slots", "2"], "--node-ip and --slots are for --join"),
        (["--join", "10.0.0.1:6390", "--port", "1"], "--port is for --head"),
        (["--join", "10.0.0.1:6390", "--node-ip", "10.0.0.7"], "needs --node-ip"),
    ],
)
def test_options_of_the_other_role_are_refused(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROWSERFLEET_CLUSTER__NODE_IP", raising=False)
    assert main(["cluster", "up", *argv]) == 1
    assert said in capsys.readouterr().err


def test_status_without_an_address_says_how_to_give_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BROWSERFLEET_CLUSTER__ADDRESS", raising=False)
    assert main(["cluster", "status"]) == 1
    assert "pass --address or set BROWSERFLEET_CLUSTER__ADDRESS" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["up", "--head", "10.0.0.1"],
        ["up", "--join", "10.0.0.1:6390", "--node-ip", "10.0.0.7", "--slots", "1"],
        ["status", "--address", "10.0.0.1:6390"],
    ],
)
def test_without_ray_the_error_names_the_extra_to_install(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an install without the extra finds
    assert main(["cluster", *argv]) == 1
    err = capsys.readouterr().err
    assert "error: Ray is not installed" in err
    assert "pip install 'browserfleet[cluster]'" in err


def test_the_status_table_lists_each_node_with_its_free_and_total_slots() -> None:
    nodes = [
        NodeSlots("aa11", "10.0.0.1", alive=True, slots_total=0, slots_free=0),
        NodeSlots("bb22", "10.0.0.7", alive=True, slots_total=4, slots_free=1),
        NodeSlots("cc33", "10.0.0.8", alive=False, slots_total=2, slots_free=0),
    ]
    assert status_lines("10.0.0.1:6390", nodes) == [
        "cluster 10.0.0.1:6390: 2 node(s) alive, browser slots 1 free of 4",
        "NODE IP          STATE  SLOTS FREE/TOTAL  NODE ID",
        "10.0.0.1         alive  0/0               aa11",
        "10.0.0.7         alive  1/4               bb22",
        "10.0.0.8         dead   0/2               cc33",
    ]


def test_serve_cluster_names_the_heads_address_and_needs_postgresql(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = build_parser().parse_args(
        ["serve", "--cluster", "10.0.0.1:6390", "--data-dir", str(tmp_path)]
    )
    settings = settings_from(args)
    assert settings.cluster.address == "10.0.0.1:6390"
    assert "postgresql" in (cluster_problem(settings) or "")  # SQLite: refused, Ray untouched
    assert main(["serve", "--cluster", "10.0.0.1:6390", "--data-dir", str(tmp_path)]) == 2
    assert "BROWSERFLEET_DATABASE_URL" in capsys.readouterr().err
    on_postgres = settings.model_copy(
        update={"database_url": "postgresql+asyncpg://u@db.internal/browserfleet"}
    )
    assert cluster_problem(on_postgres) is None
    assert cluster_problem(settings.model_copy(update={"cluster": ClusterSettings()})) is None
