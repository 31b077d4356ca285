"""Settings shared by the entry points: one flag per environment variable, read once in main.

A flag `--redis-url` reads `REDIS_URL` as its default, so the same names work on the command
line, in the environment and in the Helm values. Each such flag is an `EnvFlag` that keeps its
variable's name and description, so the configuration reference (docs/configuration.md) and the
tests of the Helm charts and docker-compose.yml take the names from the parsers themselves:
adding a variable is one `env_flag` call.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mimir_edge.store.address import redact_url

if TYPE_CHECKING:
    from mimir_edge.store.client import RedisConfig

TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


class EnvFlag(argparse.Action):
    """Stores its value like argparse's default action, and remembers the environment variable."""

    def __init__(self, option_strings: list[str], dest: str, *, env_var: str, summary: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.env_var = env_var
        #: The help text without the "(env ...; default ...)" that --help adds.
        self.summary = summary

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)


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
    shown: Callable[[Any], str] | None = None,
    **kwargs: Any,
) -> None:
    """Add `--name-in-kebab-case` whose default comes from env var NAME, else `default`.
    `shown` turns the default into what --help may print (e.g. a URL without its password)."""
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
        action=EnvFlag,
        env_var=name,
        summary=help,
        dest=name.lower(),
        type=type,
        default=value,
        help=f"{help} (env {name}; default {shown(value).replace('%', '%%') if shown else '%(default)s'})",
        **kwargs,
    )


def add_redis_flags(parser: argparse.ArgumentParser, env: Mapping[str, str] = os.environ) -> None:
    env_flag(
        parser,
        "REDIS_URL",
        env,
        default="redis://127.0.0.1:6379/0",
        help="Redis URL, redis:// or rediss:// for TLS",
        shown=redact_url,
    )
    env_flag(
        parser,
        "REDIS_CLUSTER_NODES",
        env,
        default="",
        help="comma-separated host:port of Redis Cluster nodes; switches to Cluster mode",
    )
    env_flag(parser, "REDIS_TIMEOUT", env, default=0.25, type=float, help="seconds to wait for one Redis call")
    env_flag(
        parser,
        "REDIS_USERNAME",
        env,
        default="",
        help="Redis ACL user; overrides a user in REDIS_URL",
    )
    env_flag(
        parser,
        "REDIS_PASSWORD",
        env,
        default="",
        help="Redis AUTH password, as it is (no URL encoding); overrides a password in REDIS_URL. "
        "Prefer the environment variable: a flag shows in the process list",
        shown=lambda value: "set, not shown" if value else "none",
    )


def redis_config(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *, min_timeout_s: float = 0.0
) -> RedisConfig:
    """The RedisConfig the redis flags describe; exits through `parser.error` on a bad value
    (the message never shows a password)."""
    from mimir_edge.store.client import RedisConfig

    if args.redis_timeout <= 0:
        parser.error("--redis-timeout must be positive")
    try:
        nodes = RedisConfig.parse_cluster_nodes(args.redis_cluster_nodes)
    except ValueError as exc:
        parser.error(f"--redis-cluster-nodes: {exc}")
    try:
        return RedisConfig(
            url=args.redis_url,
            cluster_nodes=nodes,
            timeout_s=max(args.redis_timeout, min_timeout_s),
            username=args.redis_username,
            password=args.redis_password,
        )
    except ValueError as exc:
        parser.error(f"--redis-url: {exc}")
