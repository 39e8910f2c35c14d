"""The contacts behind the figures (``/api/contacts``, issue 24) from a real worker's ClickHouse
facts: each list has exactly the contacts its gauge counts; off unless CCPULSE_DRILLDOWN=on."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from pipeline.simulation import Faults
from tests.gauges import simulated
from tests.integration.test_wallboard import ARTIFACTS, LABELS, until
from tests.worker_process import Deployment, WorkerProcess, counter

pytestmark = pytest.mark.integration


def listed(worker: WorkerProcess, queue: str, channel: str, state: str) -> dict[str, Any]:
    try:
        return worker.get_json(f"/api/contacts?queue={queue}&channel={channel}&state={state}")  # type: ignore[no-any-return]
    except urllib.error.HTTPError as refused:
        raise AssertionError(refused.read().decode()) from None


def settled(worker: WorkerProcess) -> dict[Any, float]:
    def done(s: dict[Any, float]) -> bool:
        written = counter(s, "ccpulse_sink_rows_written_total", table="contact_facts")
        return counter(s, "ccpulse_sink_backlog_rows") == 0 and written > 0

    return worker.settled(done)  # type: ignore[no-any-return]


def test_each_list_holds_exactly_the_contacts_its_gauge_counts(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event", "CCPULSE_DRILLDOWN": "on"})
    lines = simulated(1.5, seed=37, faults=Faults(duplicates=0.03, disorder=0.05, disorder_window=120))
    lines = lines[: len(lines) * 2 // 3]  # mid-morning: contacts waiting on every channel
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        samples = settled(worker)
        lines_shown = {(dict(k[1])["queue"], dict(k[1])["channel"]) for k in samples if k[0] == "ccpulse_queue_waiting"}
        checked = {"waiting": 0, "answered_late": 0, "abandoned": 0}
        for queue, channel in sorted(lines_shown):
            where = (("channel", channel), ("queue", queue))
            today = tuple(sorted((*where, ("window", "today"))))
            want = {
                "waiting": samples[("ccpulse_queue_waiting", where)],
                "answered_late": samples.get(("ccpulse_answered", today), 0)
                - samples.get(("ccpulse_answered_in_sl", today), 0),
                "abandoned": samples.get(("ccpulse_abandoned", today), 0),
            }
            for state, count in want.items():
                shown = listed(worker, queue, channel, state)
                assert not shown["truncated"] and len(shown["contacts"]) == count, (queue, channel, state)
                checked[state] += int(count)
            waiting = listed(worker, queue, channel, "waiting")["contacts"]
            if waiting:  # oldest first, the oldest's wait is the gauge's
                assert waiting[0]["wait_seconds"] == samples[("ccpulse_queue_oldest_wait_seconds", where)]
                assert [c["offered_at"] for c in waiting] == sorted(c["offered_at"] for c in waiting)
                assert all(c["reason"] for c in waiting)
                # no key configured: the lists pseudonymise with the worker's own (never the stored id)
                assert all(len(c["customer_id"]) == 64 and not c["customer_id"].startswith("cust-") for c in waiting)
        assert all(checked.values()), checked  # every list was seen non-empty somewhere
        for bad in ("/api/contacts?queue=support&state=waiting", "/api/contacts?queue=a&channel=voice&state=x"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                worker.get_json(bad)
            assert refused.value.code == 400


def test_the_lists_are_off_unless_switched_on(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path)
    with deployment.worker() as worker, pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{worker.url}/api/contacts?queue=q&channel=voice&state=waiting", timeout=5)
    assert refused.value.code == 404 and b"CCPULSE_DRILLDOWN=on" in refused.value.read()


def test_a_tile_opens_its_contacts_in_the_browser(kafka_bootstrap: str, tmp_path: Path, browser: Any) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event", "CCPULSE_DRILLDOWN": "on"})
    lines = simulated(1.0, seed=29, faults=Faults())
    lines = lines[: len(lines) // 2]
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
        assert produced.returncode == 0, produced.stderr.decode()
        samples = settled(worker)
        waiting = {(dict(k[1])["queue"], dict(k[1])["channel"]): v for k, v in samples.items()
                   if k[0] == "ccpulse_queue_waiting" and v}  # fmt: skip
        (queue, channel), count = max(waiting.items(), key=lambda item: item[1])
        browser.get(f"{worker.url}/wallboard?lang=ja")
        until(lambda: browser.execute_script(
            f"const t = document.querySelector('.tile[data-queue=\"{queue}\"][data-channel=\"{channel}\"]');"
            "return t && t.dataset.drilldown === 'true'"), 30, "the tile, open to drill-down")  # fmt: skip
        browser.execute_script(
            f'document.querySelector(\'.tile[data-queue="{queue}"][data-channel="{channel}"]\').click()'
        )
        shown = "return [...document.querySelectorAll('#rows tr')].map(r => r.dataset.contact)"
        rows = until(lambda: browser.execute_script(shown), 30, "the list")
        api = listed(worker, queue, channel, "waiting")["contacts"]
        assert rows == [c["contact_id"] for c in api] and len(rows) == count
        assert "state=waiting" in browser.current_url and "lang=ja" in browser.current_url  # a URL to bookmark
        assert browser.execute_script("return document.documentElement.lang") == "ja"
        assert browser.find_element("css selector", "#states a.current").text == LABELS["ja"]["waiting"]
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "wallboard-contacts-ja.png"))
        browser.find_element("css selector", '#states a[data-state="abandoned"]').click()
        abandoned = listed(worker, queue, channel, "abandoned")["contacts"]
        until(lambda: browser.execute_script("return document.querySelectorAll('#rows tr').length") == len(abandoned)
              and "state=abandoned" in browser.current_url, 30, "the abandoned list")  # fmt: skip
