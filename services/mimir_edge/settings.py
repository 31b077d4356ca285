"""Settings shared by the entry points: one flag per environment variable, read once in main.

A flag `--redis-url` reads `REDIS_URL` as its default, so the same names work on the command
line, in the environment and in the Helm values.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def absolute_path(text: str) -> Path:
    """A path argument, absolute against the directory the program was started in. Every path
    option goes through here where argv is parsed, so the code below can require absolute paths
    (NGINX's config does; child processes may run elsewhere). Symlinks are kept, not resolved: a
    ConfigMap volume's file is a symlink that moves on every update."""
    return Path(text).expanduser().absolute()


def env_flag(
    parser: argparse.ArgumentParser | Any,
    name: str,
    env: Mapping[str, str],
    *,
    default: Any,
    help: str,
    type: Any = str,
    **kwargs: Any,
) -> None:
    """Add `--name-in-kebab-case` whose default comes from env var NAME, else `default`."""
    flag = "--" + name.lower().replace("_", "-")
    raw = env.get(name)
    if raw is not None:
        try:
            value = type(raw)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            parser.error(f"environment variable {name}={raw!r}: {exc}")
    else:
        value = default
    parser.add_argument(
        flag,
        dest=name.lower(),
        type=type,
        default=value,
        help=f"{help} (env {name}; default %(default)s)",
        **kwargs,
    )


def add_redis_flags(parser: argparse.ArgumentParser, env: Mapping[str, str] = os.environ) -> None:
    env_flag(
        parser,
        "REDIS_URL",
        env,
        default="redis://127.0.0.1:6379/0",
        help="Redis URL, redis:// or rediss:// for TLS",
    )
    env_flag(
        parser,
        "REDIS_CLUSTER_NODES",
        env,
        default="",
        help="comma-separated host:port of Redis Cluster nodes; switches to Cluster mode",
    )
    env_flag(parser, "REDIS_TIMEOUT", env, default=0.25, type=float, help="seconds to wait for one Redis call")
