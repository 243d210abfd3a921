"""The suite's network rule, enforced in the test process: sockets may reach loopback only.

Every ``connect`` to an internet address other than 127.0.0.0/8 or ::1, and every name lookup of a host other than
``localhost``, is refused with ``OSError`` (so the code under test meets a network that is down, never the real one)
and recorded; ``pytest_runtest_teardown`` fails the test that tried. Processes the tests start are bound by their
own settings (``HF_ENDPOINT`` and the hub constants pointed at the loopback hub, Ray on 127.0.0.1).
"""

from __future__ import annotations

import ipaddress
import socket

import pytest

_attempts: list[str] = []
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host) -> bool:
    host = str(host).split("%")[0]
    if host in _LOCAL_NAMES or host == "":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refuse(what: str):
    _attempts.append(what)
    raise OSError(f"the test suite reaches loopback only; refused {what}")


def _guard_connect(original):
    def connect(self, address, *args):
        if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address[0]):
            _refuse(f"a connection to {address[0]}:{address[1]}")
        return original(self, address, *args)

    return connect


def install() -> None:
    """Patch the socket module of this process (idempotent)."""
    if getattr(socket, "_loopback_only", False):
        return
    socket.socket.connect = _guard_connect(socket.socket.connect)
    socket.socket.connect_ex = _guard_connect(socket.socket.connect_ex)
    lookup = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host is not None and not _is_loopback(host.decode() if isinstance(host, bytes) else host):
            _refuse(f"a lookup of {host}")
        return lookup(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    socket._loopback_only = True


def check_after_test() -> None:
    """Fail the test that tried to reach beyond loopback (the attempt itself was refused)."""
    if _attempts:
        tried = "; ".join(dict.fromkeys(_attempts))
        _attempts.clear()
        pytest.fail(f"the test tried to reach beyond loopback: {tried}", pytrace=False)
