"""The source checkout's Kafka launcher (``deploy/local/kafka.py``), loaded as a module.

The launcher is standard-library Python so it runs before any venv exists; the package and
the tests reuse it rather than carrying a second copy.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

LAUNCHER = Path(__file__).resolve().parent.parent / "deploy" / "local" / "kafka.py"


def launcher() -> ModuleType:
    if not LAUNCHER.is_file():
        raise RuntimeError(
            f"the local Kafka launcher is not at {LAUNCHER}: ccpulse up and ccpulse broker run from a "
            "source checkout (git clone, then pip install -e .). Elsewhere, point CCPULSE_KAFKA_BOOTSTRAP "
            "at your Kafka cluster."
        )
    name = "ccpulse_local_kafka"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, LAUNCHER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module
