"""The worker's published web address (pipeline/web_address.py): CCPULSE_HTTP_PORT=0 binds any
free port, and the clients find it in the data dir."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from pipeline import web_address
from pipeline.settings import Settings


def test_a_running_writer_s_address_is_read_back_and_withdrawn_only_by_it(tmp_path: Path) -> None:
    path = web_address.address_file(tmp_path)
    web_address.publish(path, "http://127.0.0.1:41234", os.getpid())
    assert web_address.published(path) == "http://127.0.0.1:41234"
    assert web_address.published(path, pid=os.getpid()) == "http://127.0.0.1:41234"
    assert web_address.published(path, pid=os.getpid() + 1) is None  # another worker's start: not yet its own
    web_address.withdraw(path, os.getpid() + 1)
    assert path.exists()
    web_address.withdraw(path, os.getpid())
    assert not path.exists() and web_address.published(path) is None


def test_the_address_of_a_killed_worker_is_not_believed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    path = web_address.address_file(tmp_path)
    web_address.publish(path, "http://127.0.0.1:41234", gone.pid)
    assert web_address.published(path) is None
    path.write_text("{half a file")
    assert web_address.published(path) is None


def test_settings_read_the_published_address_only_with_port_0(tmp_path: Path) -> None:
    web_address.publish(web_address.address_file(tmp_path), "http://127.0.0.1:41234", os.getpid())
    chosen = Settings.from_env({"CCPULSE_HTTP_PORT": "0", "CCPULSE_DATA_DIR": str(tmp_path)}, env_file=None)
    assert chosen.web_url == "http://127.0.0.1:41234"
    fixed = Settings.from_env({"CCPULSE_HTTP_PORT": "7100", "CCPULSE_DATA_DIR": str(tmp_path)}, env_file=None)
    assert fixed.web_url == "http://127.0.0.1:7100"
    nobody = Settings.from_env({"CCPULSE_HTTP_PORT": "0", "CCPULSE_DATA_DIR": str(tmp_path / "x")}, env_file=None)
    assert nobody.web_url == ""
