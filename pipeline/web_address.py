"""Where a running worker's web server answers, published in its data dir (``<data dir>/web.json``).

The worker writes the file once its server has bound (with ``CCPULSE_HTTP_PORT=0``, the port the
kernel gave it) and removes it when it stops; a file left by a killed worker is recognised by its
pid and ignored. The reader's rule: a configured port (``CCPULSE_HTTP_PORT`` ≠ 0) is the address;
with port 0 the address is the published one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FILE_NAME = "web.json"


def address_file(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def url_of(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def publish(path: Path, url: str, pid: int) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{pid}")
    partial.write_text(json.dumps({"url": url, "pid": pid}) + "\n")
    os.replace(partial, path)


def withdraw(path: Path, pid: int) -> None:
    """Remove the file if this process published it."""
    if published(path, pid=pid) is not None:
        path.unlink(missing_ok=True)


def published(path: Path, pid: int | None = None) -> str | None:
    """The URL in the file, if the process that wrote it still runs (and is ``pid``, when given)."""
    try:
        record = json.loads(path.read_text())
        url, writer = str(record["url"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid is not None and writer != pid:
        return None
    return url if _alive(writer) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed process its parent has not reaped yet still has a pid
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
