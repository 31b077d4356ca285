"""The Lua scripts in `lua/`: loaded from disk once, called by SHA."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

# In a checkout the scripts are at the repository root; in a wheel they are packaged beside
# the code (pyproject's force-include). There is only ever one copy of each in the repo.
_CHECKOUT_LUA = Path(__file__).resolve().parents[3] / "lua"


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    source: str
    sha: str


@cache
def load_script(name: str) -> LuaScript:
    """The script `lua/<name>.lua` with its SHA1 (what EVALSHA wants)."""
    filename = f"{name}.lua"
    path = _CHECKOUT_LUA / filename
    if path.is_file():
        source = path.read_text()
    else:
        source = (resources.files("mimir_edge") / "lua" / filename).read_text()
    return LuaScript(name, source, hashlib.sha1(source.encode()).hexdigest())
