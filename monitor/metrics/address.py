"""`[metrics] listen`: where the endpoint listens, parsed once, for the config and the server.

Accepted: `HOST:PORT` (an IPv4 address or a host name, e.g. `127.0.0.1:9464` or
`localhost:9464`), `[IPV6]:PORT` (e.g. `[::1]:9464`, `[::]:9464`), and `unix:PATH` (an
absolute path; the socket file is made there). A port is 1 to 65535: the endpoint is scraped
at an address Prometheus knows, so a random port (0) is no use.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", re.ASCII)
MAX_UNIX_PATH_BYTES = 107
"""A Unix socket's path must fit sun_path (108 bytes with the final NUL)."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A TCP `host` and `port`, or a Unix socket `path` (then `host` is None)."""

    host: str | None = None
    port: int = 0
    path: str | None = None

    @property
    def ipv6(self) -> bool:
        return self.host is not None and ":" in self.host

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if self.ipv6 else f"{self.host}:{self.port}"


def parse_listen(text: str) -> ListenAddress:
    """Parse `text`; a ValueError says what is wrong, in words the config error can quote."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        if not path.startswith("/"):
            raise ValueError(
                "a unix: socket needs an absolute path, e.g. unix:/run/jtm/metrics.sock"
            )
        if len(path.encode()) > MAX_UNIX_PATH_BYTES or "\0" in path:
            raise ValueError(f"a socket path is at most {MAX_UNIX_PATH_BYTES} bytes")
        return ListenAddress(path=path)
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError("expected [IPV6]:PORT, e.g. [::1]:9464")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not an IPv6 address: {host!r}") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError("expected HOST:PORT, [IPV6]:PORT or unix:PATH, e.g. 127.0.0.1:9464")
        if ":" in host:
            raise ValueError("an IPv6 address goes in brackets, e.g. [::1]:9464")
        if not _HOST_NAME.fullmatch(host):
            raise ValueError(f"not a host name or address: {host!r}")
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"the port must be a number from 1 to 65535, not {port!r}")
    return ListenAddress(host=host, port=int(port))
