"""CI strictness: under any truthy ``CI`` a missing dependency or missing shared data fails the
test instead of skipping it (a skip would hide a check CI is there to run)."""

from __future__ import annotations

import pytest

from tests.conftest import _shared, need_module, under_ci

OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)


def outcome(call, *args) -> tuple[type, str]:
    """What ``call`` ended with: pytest's fail or skip outcome and its message (caught here, so
    that a wrong skip fails this test instead of skipping it)."""
    with pytest.raises(OUTCOMES) as info:
        call(*args)
    return info.type, str(info.value)


TRUTHY = ["1", "true", "TRUE", "True", "yes", "YES", "on", " true\n", "github-actions"]
FALSY = ["", "0", "false", "FALSE", "False", "no", "off", "  "]


@pytest.mark.parametrize("value", TRUTHY)
def test_truthy_ci_values(value):
    assert under_ci({"CI": value})


@pytest.mark.parametrize("value", FALSY)
def test_false_like_or_empty_ci_values(value):
    assert not under_ci({"CI": value})


def test_unset_ci_is_a_developer_machine():
    assert not under_ci({})


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes"])
def test_missing_data_and_modules_fail_under_ci(monkeypatch, value):
    monkeypatch.setenv("CI", value)
    for call, arg in ((_shared, "no/such/folder"), (need_module, "no_such_module_meit")):
        kind, message = outcome(call, arg)
        assert kind is pytest.fail.Exception and "under CI" in message, (kind, message)


@pytest.mark.parametrize("value", [None, "false", "0"])
def test_missing_data_and_modules_skip_elsewhere(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert outcome(_shared, "no/such/folder")[0] is pytest.skip.Exception
    assert outcome(need_module, "no_such_module_meit")[0] is pytest.skip.Exception
    assert need_module("json").dumps([]) == "[]"


def test_network_guard_refuses_outside_addresses_and_names():
    import socket

    with pytest.raises(AssertionError, match="reach the network"):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)  # TEST-NET-1, never routed
    with pytest.raises(AssertionError, match="resolve a network name"):
        socket.getaddrinfo("huggingface.co", 443)


def test_network_guard_lets_loopback_through():
    import socket

    server = socket.create_server(("127.0.0.1", 0))
    with server, socket.create_connection(server.getsockname(), timeout=1):
        pass
    assert socket.getaddrinfo("localhost", 80)
