"""Prometheus' own tools from Debian packages: skipped with the apt command locally, a failure in
CI (``.ci/run`` installs them), never a silent pass."""

from __future__ import annotations

import os
import shutil

import pytest


def debian_tool(name: str, package: str) -> str:
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs it (Debian package {package})")
        pytest.skip(f"{name} not installed (apt-get install {package}); CI runs this test")
    return found
