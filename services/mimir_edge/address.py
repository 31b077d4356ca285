"""`host:port`, parsed one way for every flag, env var and config that takes an address."""

from __future__ import annotations


def parse_host_port(text: str) -> tuple[str, int]:
    """`host:port` or `[ipv6]:port` → (host, port), brackets removed; ValueError saying what is wrong."""
    value = text.strip()
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r} is not host:port")
    if host.startswith("["):
        host = host[1:-1] if host.endswith("]") else ""
        if not host or "[" in host or "]" in host:
            raise ValueError(f"{text!r} is not host:port (unbalanced brackets)")
    elif "]" in host:
        raise ValueError(f"{text!r} is not host:port (unbalanced brackets)")
    elif ":" in host:
        # Without brackets "::1:80" could be the address ::1 with port 80 or the address ::1:80.
        raise ValueError(f"{text!r}: an IPv6 address needs brackets, as in [::1]:80")
    if not port.isascii() or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port)
