"""Tests of the package as a user installs it: each builds a fresh virtualenv from the package index
(PyPI), so each is slow (a minute or two) and needs the index; there are only a few of them."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "packaging: builds a fresh virtualenv from the package index (slow)")
