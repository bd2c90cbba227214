"""Which hosts `panels serve` answers, and what a non-loopback --address needs (no server started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from panels_core.cli import main
from panels_core.workspace.hosts import HostList, is_loopback
from panels_core.workspace.server import listening_hosts


class Request:
    """Just the headers of a Tornado request."""

    def __init__(self, **headers: str) -> None:
        self.headers = headers


def test_by_default_only_loopback_names_with_the_port_are_answered() -> None:
    hosts = HostList(5006)
    assert hosts.allows("localhost:5006") and hosts.allows("127.0.0.1:5006")
    assert hosts.allows("LOCALHOST:5006")
    for host in ("evil.example:5006", "localhost:5007", "localhost", "127.0.0.2:5006", "", "::"):
        assert not hosts.allows(host), host
    assert hosts.origin_allowed("http://localhost:5006")
    for origin in ("http://evil.example:5006", "null", "file://", "http://localhost:80"):
        assert not hosts.origin_allowed(origin), origin


def test_refusal_names_the_host_or_the_origin() -> None:
    hosts = HostList(5006)
    assert hosts.refusal(Request(Host="localhost:5006")) is None
    assert hosts.refusal(Request(Host="localhost:5006", Origin="http://127.0.0.1:5006")) is None
    why = hosts.refusal(Request(Host="evil.example:5006", Origin="http://evil.example:5006"))
    assert why.startswith("Host `evil.example:5006` is not allowed")
    assert "--allow-origin" in why
    why = hosts.refusal(Request(Host="localhost:5006", Origin="http://evil.example:5006"))
    assert why == "Origin `http://evil.example:5006` is not allowed to use this workspace"


def test_allow_origin_adds_a_name_with_its_port_or_any_port() -> None:
    hosts = HostList(8000, ["Box.lan:8000", "proxy.example"])
    assert hosts.allows("box.lan:8000") and not hosts.allows("box.lan:9000")
    assert hosts.allows("proxy.example") and hosts.allows("proxy.example:443")
    assert hosts.origin_allowed("https://proxy.example")
    assert hosts.websocket_origins() == [
        "localhost:8000",
        "127.0.0.1:8000",
        "box.lan:8000",
        "proxy.example",
    ]
    with pytest.raises(ValueError, match="`box:http` has an invalid port"):
        HostList(8000, ["box:http"])
    with pytest.raises(ValueError, match="`a/b` is not a host name"):
        HostList(8000, ["a/b"])


def test_loopback_addresses() -> None:
    for address in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert is_loopback(address), address
    for address in ("0.0.0.0", "::", "", "192.168.1.5", "example.com"):
        assert not is_loopback(address), address


def test_a_non_loopback_address_needs_allow_origin() -> None:
    with pytest.raises(ValueError, match=r"--address 0\.0\.0\.0 listens beyond this machine"):
        listening_hosts("0.0.0.0", 5006)
    assert listening_hosts("0.0.0.0", 5006, ["box.lan"]).allows("box.lan:5006")


def test_the_cli_refuses_before_reading_any_table(tmp_path: Path, capsys) -> None:
    missing_ok = tmp_path / "not-read.parquet"
    missing_ok.write_bytes(b"not parquet")  # would fail to load if it were read
    status = main(["serve", str(missing_ok), "--address", "0.0.0.0"])
    err = capsys.readouterr().err
    assert status == 2
    assert (
        "panels: error: --address 0.0.0.0 listens beyond this machine: give --allow-origin" in err
    )
    status = main(["serve", str(missing_ok), "--allow-origin", "a:b:c"])
    assert status == 2
    assert "`a:b:c`" in capsys.readouterr().err
