from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.targets import Targets, TargetsError


def test_defaults_are_those_of_metrics_md() -> None:
    targets = Targets()
    assert (targets.for_queue("any", "voice").threshold_seconds, targets.for_queue("any", "voice").target_ratio) == (
        20,
        0.8,
    )
    assert targets.for_queue("any", "email").threshold_seconds == 86400
    assert targets.for_queue("any", "email").target_ratio == 0.9
    assert (targets.short_abandon_seconds, targets.fcr_window_days) == (5, 7)


def test_queue_and_channel_wins_over_channel_wins_over_default() -> None:
    targets = Targets.from_document(
        {"channels": {"voice": {"sl_threshold_seconds": 30}}, "queues": {"vip": {"voice": {"sl_target": 0.95}}}}
    )
    assert targets.for_queue("billing", "voice").threshold_seconds == 30
    vip = targets.for_queue("vip", "voice")
    assert (vip.threshold_seconds, vip.target_ratio) == (30, 0.95)  # unset fields come from the channel
    assert targets.for_queue("vip", "chat").threshold_seconds == 30  # the chat default


@pytest.mark.parametrize(
    "document",
    [{"channels": {"fax": {}}}, {"channels": {"voice": {"sl_target": 1.5}}}, {"fcr_window_days": "7"}, []],
)
def test_a_wrong_targets_file_is_refused_with_where(document: object) -> None:
    with pytest.raises(TargetsError):
        Targets.from_document(document)


def test_the_worker_refuses_a_bad_targets_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "targets.json"
    bad.write_text(json.dumps({"channels": {"fax": {}}}))
    result = subprocess.run([sys.executable, "-m", "pipeline", "worker"], capture_output=True, text=True, timeout=60,
                            env={"CCPULSE_TARGETS": str(bad), "PATH": "/usr/bin:/bin",
                                 "CCPULSE_KAFKA_BOOTSTRAP": "127.0.0.1:1"})  # fmt: skip
    assert result.returncode == 2
    assert "CCPULSE_TARGETS" in result.stderr and "fax" in result.stderr and "Traceback" not in result.stderr


def test_a_queue_keeps_its_own_zone_and_day_start() -> None:
    from datetime import UTC, datetime, time
    from zoneinfo import ZoneInfo

    targets = Targets.from_document({"day_starts": "02:00", "queues": {
        "tokyo": {"timezone": "Asia/Tokyo", "day_starts": "06:00", "voice": {"sl_threshold_seconds": 10}},
        "seoul": {"timezone": "Asia/Seoul"}}})  # fmt: skip
    utc = ZoneInfo("UTC")
    tokyo, seoul, other = (targets.day_for(queue, utc) for queue in ("tokyo", "seoul", "other"))
    assert (tokyo.zone.key, tokyo.starts) == ("Asia/Tokyo", time(6, 0))
    assert (seoul.zone.key, seoul.starts) == ("Asia/Seoul", time(2, 0))  # the file's day start
    assert (other.zone.key, other.starts) == ("UTC", time(2, 0))
    assert targets.for_queue("tokyo", "voice").threshold_seconds == 10  # channels beside the day keys

    def start(day, now: str) -> str:  # type: ignore[no-untyped-def]
        now_us = round(datetime.fromisoformat(now).timestamp() * 1_000_000)
        return datetime.fromtimestamp(day.start_us(now_us) / 1e6, UTC).isoformat()

    # 05:59 in Tokyo is still yesterday's day there; 06:00 begins today's
    assert start(tokyo, "2026-11-23T20:59:00+00:00") == "2026-11-22T21:00:00+00:00"
    assert start(tokyo, "2026-11-23T21:00:00+00:00") == "2026-11-23T21:00:00+00:00"
    # New York's day at 02:30 on the morning the clocks skip 02:00-03:00 begins when they would show it
    ny = targets.__class__.from_document({"queues": {"ny": {"timezone": "America/New_York",
                                                            "day_starts": "02:30"}}}).day_for("ny", utc)  # fmt: skip
    assert start(ny, "2026-03-08T12:00:00+00:00") == "2026-03-08T07:30:00+00:00"  # 02:30 EST = 03:30 EDT


@pytest.mark.parametrize(("entry", "says"), [
    ({"timezone": "Asia/Tokio"}, "Asia/Tokio' is not an IANA time zone"),
    ({"timezone": 9}, "is not an IANA time zone"),
    ({"day_starts": "6:00"}, "'6:00' is not a local time HH:MM"),
    ({"day_starts": "24:00"}, "is not a local time HH:MM"),
])  # fmt: skip
def test_a_wrong_zone_or_day_start_names_the_line_of_the_file(tmp_path: Path, entry: dict, says: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"channels": {"voice": {"sl_target": 0.8}}, "queues": {"tokyo": entry}}, indent=2))
    with pytest.raises(TargetsError, match=says) as refused:
        Targets.load(path)
    line = next(
        n
        for n, text in enumerate(path.read_text().splitlines(), start=1)
        if json.dumps(list(entry.values())[0]) in text
    )
    assert str(refused.value).startswith(f"{path}:{line}: queues.tokyo.")


def test_service_level_definitions_per_queue_and_channel() -> None:
    targets = Targets.from_document({
        "channels": {"chat": {"sl_abandons": "all"}},
        "queues": {"vip": {"voice": {"sl_abandons": "all", "sl_abandons_in_threshold_met": True}},
                   "branch": {"voice": {"sl_abandons": "excluded"}},
                   "lenient": {"voice": {"sl_abandons_in_threshold_met": True}}},
    })  # fmt: skip
    assert (targets.for_queue("any", "voice").abandons, targets.for_queue("any", "voice").abandons_met) == (
        "short_excluded", False)  # METRICS.md's  # fmt: skip
    assert targets.for_queue("any", "chat").abandons == "all"
    assert (targets.for_queue("vip", "voice").abandons, targets.for_queue("vip", "voice").abandons_met) == ("all", True)
    assert targets.for_queue("vip", "voice").threshold_seconds == 20  # the rest from the channel


@pytest.mark.parametrize(("entry", "says"), [
    ({"sl_abandons": "some"}, "sl_abandons: expected one of short_excluded, all, excluded"),
    ({"sl_abandons_in_threshold_met": "yes"}, "expected true or false"),
    ({"sl_abandons": "excluded", "sl_abandons_in_threshold_met": True}, "needs abandons counted"),
    ({"sl_abandons": "all", "sl_abandons_in_threshold_met": True, "sl_threshold_seconds": 3},
     "must be at least short_abandon_seconds"),
])  # fmt: skip
def test_a_wrong_definition_is_refused(entry: dict, says: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(TargetsError, match=says):
        Targets.from_document({"queues": {"q": {"voice": entry}}})


def test_business_hours_holidays_and_closed_dates_in_the_queue_s_zone() -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    targets = Targets.from_document({"queues": {"tokyo": {
        "timezone": "Asia/Tokyo", "hours": {"mon": "09:00-18:00", "tue": ["09:00-12:00", "13:00-18:00"]},
        "holidays": "JP", "closed_dates": ["2026-12-01"]}}}, zone=ZoneInfo("UTC"))  # fmt: skip
    tokyo = targets.calendar_for("tokyo")
    assert tokyo is not None and targets.calendar_for("other") is None and not tokyo.counted

    def open_at(text: str) -> bool:
        return tokyo.is_open(round(datetime.fromisoformat(text).timestamp() * 1_000_000))

    assert open_at("2026-11-30T09:00:00+09:00") and not open_at("2026-11-30T18:00:00+09:00")  # [09:00, 18:00)
    assert not open_at("2026-11-24T12:30:00+09:00") and open_at("2026-11-24T13:00:00+09:00")  # lunch closed
    assert not open_at("2026-11-23T10:00:00+09:00")  # 勤労感謝の日, a Monday: a public holiday in Japan
    assert not open_at("2026-12-01T10:00:00+09:00")  # the center's own closed date (a Tuesday)
    assert not open_at("2026-11-25T10:00:00+09:00")  # Wednesday: not in the hours, closed
    assert open_at("2026-11-30T00:30:00+00:00")  # 09:30 in Tokyo: the queue's own zone, not UTC


@pytest.mark.parametrize(("entry", "says", "key"), [
    ({"hours": {"mon": ["09:00-13:00", "12:00-18:00"]}}, "hours.mon: ranges overlap", "hours"),
    ({"hours": {"mon": "18:00-09:00"}}, "ends before it starts", "hours"),
    ({"hours": {"monday": "09:00-18:00"}}, "hours: expected an object of mon", "hours"),
    ({"holidays": "XX"}, "holidays: the holidays package knows no country 'XX'", "holidays"),
    ({"closed_dates": ["2026-13-01"]}, "closed_dates: '2026-13-01' is not a date", "closed_dates"),
    ({"out_of_hours": "hidden"}, "out_of_hours: expected apart or counted", "out_of_hours"),
])  # fmt: skip
def test_wrong_hours_name_the_line_of_the_file(tmp_path: Path, entry: dict, says: str, key: str) -> None:  # type: ignore[type-arg]
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"short_abandon_seconds": 5, "queues": {"tokyo": {"timezone": "Asia/Tokyo", **entry}}},
                               indent=2))  # fmt: skip
    with pytest.raises(TargetsError, match=says) as refused:
        Targets.load(path)
    line = next(n for n, text in enumerate(path.read_text().splitlines(), start=1) if f'"{key}"' in text)
    assert str(refused.value).startswith(f"{path}:{line}: queues.tokyo.{key}")
