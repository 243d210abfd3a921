"""The suite's own network rule: a connection or lookup beyond loopback is refused and recorded (checked on a stand-in
socket call, so nothing is ever sent)."""

import socket

import pytest
from helpers import loopback_only


def test_only_loopback_addresses_pass(monkeypatch):
    calls = []
    connect = loopback_only._guard_connect(lambda sock, address, *args: calls.append(address))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        connect(sock, ("127.0.0.1", 9))
        connect(sock, ("localhost", 9))
        with pytest.raises(OSError, match="loopback only; refused a connection to 192.0.2.1:80"):
            connect(sock, ("192.0.2.1", 80))
    assert calls == [("127.0.0.1", 9), ("localhost", 9)]
    assert loopback_only._attempts == ["a connection to 192.0.2.1:80"]
    with pytest.raises(pytest.fail.Exception, match="tried to reach beyond loopback: a connection to 192.0.2.1:80"):
        loopback_only.check_after_test()
    assert loopback_only._attempts == []


def test_the_guard_is_installed_in_the_test_process():
    assert socket.getaddrinfo.__module__ == loopback_only.__name__  # checked first: the lookup below never leaves
    with pytest.raises(OSError, match="refused a lookup of example.org"):
        socket.getaddrinfo("example.org", 443)
    loopback_only._attempts.clear()
    assert [loopback_only._is_loopback(h) for h in ("::1", "127.0.0.5", "10.0.0.1", "huggingface.co")] == [
        True,
        True,
        False,
        False,
    ]
