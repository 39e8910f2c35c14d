"""Asterisk's queue_log through the real broker and worker: ``ccpulse produce --from
asterisk-queue-log`` of the documented-events fixture gives the gauges that the calls' own
recorded waits and talk times give (worked out by hand below from the fixture's lines)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.worker_process import Deployment, caught_up, counter

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "queue_log"


def test_a_queue_log_gives_the_gauges_of_its_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    with deployment.worker() as worker:
        produced = deployment.ccpulse("produce", "--from", "asterisk-queue-log", str(FIXTURE))
        assert produced.returncode == 0, produced.stderr.decode()
        assert "0 rejected" in produced.stderr.decode()
        today = {"window": "today", "channel": "voice"}
        samples = worker.wait_for(lambda s: caught_up(s)
                                  and counter(s, "ccpulse_events_total", type="contact.ended") == 6
                                  and counter(s, "ccpulse_handled", queue="billing", **today) == 2
                                  and counter(s, "ccpulse_handled", queue="support", **today) == 2)  # fmt: skip

        def gauge(name: str, queue: str) -> float | None:
            return samples.get((name, tuple(sorted({**today, "queue": queue}.items()))))

        # support: two calls, answered after 12 s and 3 s, talked 78 s and 147 s
        assert counter(samples, "ccpulse_offered", queue="support", **today) == 2
        assert counter(samples, "ccpulse_answered_in_sl", queue="support", **today) == 2
        assert gauge("ccpulse_asa_seconds", "support") == 7.5
        assert gauge("ccpulse_aht_seconds", "support") == 112.5
        # billing: four calls; two answered (recorded holds 30 s and 5 s; talked 119 s and 95 s before
        # their transfers), one timed out, one left an empty queue: neither abandoned
        assert counter(samples, "ccpulse_offered", queue="billing", **today) == 4
        assert counter(samples, "ccpulse_answered", queue="billing", **today) == 2
        assert counter(samples, "ccpulse_abandoned", queue="billing", **today) == 0
        assert gauge("ccpulse_asa_seconds", "billing") == 17.5
        assert gauge("ccpulse_aht_seconds", "billing") == 107.0
        assert gauge("ccpulse_service_level_ratio", "billing") == 0.5  # 30 s is over the 20 s threshold
        # "Support Desk" (a name the contract's pattern does not take): one call abandoned after 5 s
        desk = [dict(labels)["queue"] for (name, labels) in samples if name == "ccpulse_abandoned"
                and dict(labels)["queue"].startswith("Support_Desk-")]  # fmt: skip
        assert desk and counter(samples, "ccpulse_abandoned", queue=desk[0], **today) == 1
        assert counter(samples, "ccpulse_events_invalid_total", reason="schema") == 0
