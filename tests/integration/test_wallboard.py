"""The wallboard in a real browser (Debian's Chromium, headless) against a real worker and broker:
the page shows the gauges' numbers, fits twelve queues on a 1080p screen in three languages with
its own fonts, turns a tile red when the queue breaches, and warns when the data goes stale."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.simulation import Faults
from tests.gauges import simulated
from tests.worker_process import Deployment

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("CCPULSE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
LABELS = json.loads((ROOT / "pipeline" / "wallboard" / "labels.json").read_text(encoding="utf-8"))
START = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

# tile field (data-field) -> (metric, its labels besides queue and channel)
TODAY = (("window", "today"),)
FIELDS = {
    "waiting": ("ccpulse_queue_waiting", ()),
    "oldest_wait_seconds": ("ccpulse_queue_oldest_wait_seconds", ()),
    "service_level.today": ("ccpulse_service_level_ratio", TODAY),
    "service_level.15m": ("ccpulse_service_level_ratio", (("window", "15m"),)),
    "asa_seconds": ("ccpulse_asa_seconds", TODAY),
    "abandon_ratio": ("ccpulse_abandon_ratio", TODAY),
    "aht_seconds": ("ccpulse_aht_seconds", TODAY),
    "csat_ratio": ("ccpulse_csat_ratio", TODAY),
    "fcr_ratio": ("ccpulse_fcr_ratio", TODAY),
    "art_seconds": ("ccpulse_art_seconds", TODAY),
    "past_promise": ("ccpulse_past_promise", ()),  # written channels only (null and absent for the others)
    **{f"backlog.{age}": ("ccpulse_backlog", (("age", age),)) for age in ("lt_1h", "1h_4h", "4h_24h", "ge_24h")},
}
AGENT_FIELDS = {"agents.available": "available", "agents.on_contact": "on_contact",
                "agents.after_contact_work": "after_contact_work"}  # fmt: skip


def until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")


def tiles(driver: Any) -> list[dict[str, Any]]:
    """Every tile as the page shows it: the raw values (data-value) and the texts."""
    return driver.execute_script(  # type: ignore[no-any-return]
        """return [...document.querySelectorAll('.tile')].map(t => ({
            queue: t.dataset.queue, channel: t.dataset.channel, status: t.dataset.status,
            badge: t.querySelector('.badge').textContent.trim(),
            values: Object.fromEntries([...t.querySelectorAll('[data-field]')].map(
                v => [v.dataset.field, JSON.parse(v.dataset.value)])),
            texts: Object.fromEntries([...t.querySelectorAll('[data-field]')].map(
                v => [v.dataset.field, v.textContent])),
            labels: [...t.querySelectorAll('[data-label]')].map(l => l.textContent),
            clipped: t.scrollHeight > t.clientHeight + 1 || t.scrollWidth > t.clientWidth + 1
                ? [t.scrollHeight, t.clientHeight, t.scrollWidth, t.clientWidth] : null,
        }))"""
    )


def contact(at: datetime, queue: str, number: int, wait_seconds: float, channel: str = "voice") -> list[bytes]:
    contact_id = f"{queue}-{number}"

    def event(kind: str, when: datetime, **fields: Any) -> bytes:
        body = {"event_id": f"{contact_id}-{kind}", "type": kind, "schema_version": 1,
                "occurred_at": when.isoformat().replace("+00:00", "Z"), "contact_id": contact_id, **fields}  # fmt: skip
        return json.dumps(body).encode()

    answered = at + timedelta(seconds=wait_seconds)
    return [
        event("contact.offered", at, channel=channel, queue=queue, customer_id=f"c-{number}"),
        event("contact.answered", answered, agent_id="agent-wb"),
        event("contact.ended", answered + timedelta(seconds=120), talk_seconds=100.0, hold_seconds=0.0,
              acw_seconds=20.0, resolved=True),
    ]  # fmt: skip


def produce(deployment: Deployment, lines: list[bytes]) -> None:
    produced = deployment.ccpulse("produce", "-", input_bytes=b"\n".join(lines) + b"\n")
    assert produced.returncode == 0, produced.stderr.decode()


def test_the_board_shows_the_gauges_fits_a_tv_and_speaks_three_languages(
    kafka_bootstrap: str, tmp_path: Path, browser: Any
) -> None:
    targets = tmp_path / "targets.json"  # one queue keeps Tokyo's day, from 06:00 there
    targets.write_text(json.dumps({"queues": {"wb_extra_1": {"timezone": "Asia/Tokyo", "day_starts": "06:00"}}}))
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event",
                                                                  "CCPULSE_TARGETS": str(targets)})  # fmt: skip
    lines = simulated(1.0, seed=29, faults=Faults(duplicates=0.03))
    lines = lines[: len(lines) // 2]  # mid-shift: agents at work, contacts waiting (the day ends all offline)
    last = max(datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines)
    for n, queue in enumerate(("wb_extra_1", "wb_extra_2", "wb_extra_3")):  # twelve queues in all
        lines += contact(last - timedelta(minutes=5), queue, n, wait_seconds=8 + 10 * n)
    with deployment.worker() as worker:
        produce(deployment, lines)
        worker.settled()
        browser.get(f"{worker.url}/wallboard")
        shown = until(lambda: len(tiles(browser)) == 12 and tiles(browser), 30, "twelve tiles")
        samples = worker.scrape()  # the event clock stands still: page and gauges share one moment
        shown = tiles(browser)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "wallboard.png"))

        for tile in shown:
            where = (("channel", tile["channel"]), ("queue", tile["queue"]))
            for field, (metric, extra) in FIELDS.items():
                expected = samples.get((metric, tuple(sorted(where + extra))))
                if metric == "ccpulse_queue_waiting" and expected is None:
                    expected = 0
                assert tile["values"][field] == expected, (tile["queue"], tile["channel"], field)
            for field, state in AGENT_FIELDS.items():
                agents = samples.get(("ccpulse_agents", (("queue", tile["queue"]), ("state", state))), 0)
                assert tile["values"][field] == agents, (tile["queue"], field)
            assert not tile["clipped"], f"tile {tile['queue']} {tile['channel']} does not fit: {tile['clipped']}"
        days = {tile["queue"]: tile["values"]["day.shown"] for tile in shown}
        assert days.pop("wb_extra_1") == "06:00 Asia/Tokyo" and set(days.values()) == {""}  # each queue's day
        assert any(tile["values"]["agents.on_contact"] for tile in shown)  # the comparison saw agents
        assert any(tile["values"]["waiting"] for tile in shown)  # and contacts waiting
        with_level = [t for t in shown if t["values"]["service_level.today"] is not None]
        assert with_level
        level = with_level[0]["values"]["service_level.today"]
        assert with_level[0]["texts"]["service_level.today"] == f"{level * 100:.1f}%"
        assert browser.execute_script(
            "const page = document.scrollingElement;"
            "return page.scrollHeight <= innerHeight && page.scrollWidth <= innerWidth"
        ), "the board scrolls"

        origin = worker.url
        for lang in ("ja", "ko"):
            browser.get(f"{worker.url}/wallboard?lang={lang}")
            until(lambda: len(tiles(browser)) == 12, 30, f"twelve tiles in {lang}")
            shown = tiles(browser)
            expected_labels = {LABELS[lang][key] for key in ("waiting", "oldest", "sl_today", "asa", "fcr", "art")}
            assert expected_labels <= set(shown[0]["labels"]), lang
            assert all(not tile["clipped"] for tile in shown), lang
            fonts = until(
                lambda: browser.execute_script(
                    "return document.fonts.status === 'loaded' && [...document.fonts]"
                    ".filter(f => f.family.includes('ccpulse-cjk')).map(f => f.status)"
                ),
                10, "fonts loaded",
            )  # fmt: skip
            assert fonts and set(fonts) == {"loaded"}, fonts  # the worker's own CJK font, not a system font
            assert browser.execute_script("return document.documentElement.lang") == lang
            browser.save_screenshot(str(ARTIFACTS / f"wallboard-{lang}.png"))
            resources = browser.execute_script("return performance.getEntriesByType('resource').map(r => r.name)")
            assert resources and all(url.startswith(origin) for url in resources), resources  # no CDN


def test_a_tile_turns_red_when_its_queue_breaches_within_a_second_of_the_gauge(
    kafka_bootstrap: str, tmp_path: Path, browser: Any
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    queue = "wb_breach"
    quick = [line for n in range(10) for line in contact(START + timedelta(seconds=10 * n), queue, n, wait_seconds=5)]
    with deployment.worker() as worker:
        produce(deployment, quick)
        worker.settled()
        browser.get(f"{worker.url}/wallboard?queue={queue}")
        until(lambda: [t["status"] for t in tiles(browser)] == ["on_target"], 30, "the tile on target")
        assert tiles(browser)[0]["badge"] == f"▲ {LABELS['en']['on_target']}"

        slow = [line for n in range(10, 20)
                for line in contact(START + timedelta(seconds=10 * n), queue, n, wait_seconds=90)]  # fmt: skip
        produce(deployment, slow)
        labels = (("channel", "voice"), ("queue", queue), ("window", "15m"))
        gauge_breached = until(
            lambda: (worker.scrape().get(("ccpulse_service_level_ratio", labels)) or 1) < 0.75 and time.monotonic(),
            60, "the gauge shows the breach",
        )  # fmt: skip
        page_breached = until(lambda: tiles(browser)[0]["status"] == "breached" and time.monotonic(), 10, "red tile")
        tile = tiles(browser)[0]
        assert tile["badge"] == f"▼ {LABELS['en']['breached']}"  # a word and an arrow, not colour alone
        assert tile["values"]["service_level.15m"] == 0.5
        colour = browser.execute_script(
            "return getComputedStyle(document.querySelector('.tile')).borderLeftColor"
        )  # fmt: skip
        assert colour == "rgb(255, 90, 95)"
        lag = page_breached - gauge_breached
        print(f"page turned red {lag:.2f}s after the gauge (scrapes every ~0.3 s, page polled every 0.1 s)")
        assert lag < 1.0


def test_the_board_warns_when_data_stops_or_the_worker_goes_and_recovers_on_its_own(
    kafka_bootstrap: str, tmp_path: Path, browser: Any
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    queue = "wb_stale"
    worker = deployment.worker(keep_port=True).start()  # the page must find it again after the restart
    try:
        produce(deployment, contact(START, queue, 1, wait_seconds=3))
        worker.settled()
        browser.get(f"{worker.url}/wallboard?idle=4")
        until(lambda: len(tiles(browser)) == 1, 30, "the tile")

        def banner() -> tuple[str, str]:
            return browser.execute_script(  # type: ignore[no-any-return]
                "const b = document.getElementById('banner'); return [b.hidden ? '' : b.dataset.kind, b.textContent]"
            )

        kind, text = until(lambda: banner()[0] == "events" and banner(), 15, "the no-new-events warning")
        assert text == LABELS["en"]["no_events"].replace("{minutes}", "0")
        worker.kill()
        kind, text = until(lambda: banner()[0] == "connection" and banner(), 10, "the connection warning")
        assert text == LABELS["en"]["connection_lost"]
        assert browser.execute_script("return document.body.classList.contains('stale')")

        worker.start()
        until(lambda: banner()[0] != "connection", 60, "the board reconnects by itself")
        produce(deployment, contact(START + timedelta(minutes=1), queue, 2, wait_seconds=3))
        until(lambda: banner()[0] == "", 30, "the warning clears once events arrive")
        assert not browser.execute_script("return document.body.classList.contains('stale')")
    finally:
        worker.stop()


def agent_cards(driver: Any) -> list[dict[str, Any]]:
    """Every agent card as the page shows it."""
    return driver.execute_script(  # type: ignore[no-any-return]
        """return [...document.querySelectorAll('.agent')].map(a => ({
            agent_id: a.dataset.agent, state: a.dataset.state, long: a.dataset.long,
            word: a.querySelector('.word').textContent, mark: a.querySelector('.mark').textContent,
            long_shown: getComputedStyle(a.querySelector('.long-cue')).display !== 'none',
            values: Object.fromEntries([...a.querySelectorAll('[data-field]')].map(
                v => [v.dataset.field, JSON.parse(v.dataset.value)])),
            texts: Object.fromEntries([...a.querySelectorAll('[data-field]')].map(
                v => [v.dataset.field, v.textContent])),
            labels: [...document.querySelectorAll('.agent-heading [data-label]')].map(l => l.textContent),
            clipped: [a, ...[...a.children].filter(c => !c.classList.contains('detail'))]  // it may end in "…"
                .filter(c => c.scrollWidth > c.clientWidth + 1 || c.scrollHeight > c.clientHeight + 1)
                .map(c => [c.className || 'row', c.scrollWidth, c.clientWidth, c.scrollHeight, c.clientHeight]),
        }))"""
    )


def agent_event(agent_id: str, at: datetime, state: str, queues: list[str], **extra: Any) -> bytes:
    return json.dumps({"event_id": f"{agent_id}-{at.isoformat()}", "type": "agent.state_changed",
                       "schema_version": 1, "occurred_at": at.isoformat().replace("+00:00", "Z"),
                       "agent_id": agent_id, "state": state, "queues": queues, **extra}).encode()  # fmt: skip


def test_the_agent_list_shows_the_api_marks_long_states_and_speaks_three_languages(
    kafka_bootstrap: str, tmp_path: Path, browser: Any
) -> None:
    deployment = Deployment(kafka_bootstrap, tmp_path, extra_env={"CCPULSE_CLOCK": "event"})
    lines = simulated(1.0, seed=29, faults=Faults(duplicates=0.03))
    lines = lines[: len(lines) // 3]  # mid-shift: agents at work
    last = max(datetime.fromisoformat(json.loads(line)["occurred_at"]) for line in lines)
    lines += [  # an agent away at lunch for 40 minutes: past the 15 minutes that make it stand out
        agent_event("wb-lunch", last - timedelta(minutes=50), "available", ["support"]),
        agent_event("wb-lunch", last - timedelta(minutes=40), "away", ["support"], reason="lunch"),
    ]
    with deployment.worker() as worker:
        produce(deployment, lines)
        worker.settled()
        document = worker.get_json("/api/agents")
        at_work = {a["agent_id"]: a for a in document["agents"] if a["state"] not in (None, "offline")}
        assert len(at_work) >= 10, len(at_work)
        browser.get(f"{worker.url}/wallboard/agents")
        cards = until(lambda: len(agent_cards(browser)) == len(at_work) and agent_cards(browser), 30, "a card each")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "wallboard-agents.png"))
        for card in cards:
            agent = at_work[card["agent_id"]]
            word = LABELS["en"].get(f"state_{agent['state']}", LABELS["en"][agent["state"]])
            assert (card["state"], card["word"]) == (agent["state"], word)
            assert card["mark"]  # a shape beside the colour and the word
            for field in ("handled", "aht_seconds", "occupancy"):
                assert card["values"][f"today.{field}"] == agent["today"][field], (card["agent_id"], field)
            # the event clock stands still; the page's clock ticks on from the document's now
            assert 0 <= card["values"]["in_state"] - (document["now"] - agent["since"]) < 30, card
            assert card["values"]["reason"] == agent["reason"]
            assert (card["values"]["contact"] or {}).get("contact_id") == (agent["contact"] or {}).get("contact_id")
            assert not card["clipped"], (card["agent_id"], card["clipped"])
        lunch = next(card for card in cards if card["agent_id"] == "wb-lunch")
        assert (lunch["long"], lunch["long_shown"], lunch["texts"]["reason"]) == ("true", True, "lunch")
        assert [card["long"] for card in cards].count("true") >= 1
        assert browser.execute_script(
            "const page = document.scrollingElement;"
            "return page.scrollHeight <= innerHeight && page.scrollWidth <= innerWidth"
        ), "the agent list scrolls"
        for lang in ("ja", "ko"):
            browser.get(f"{worker.url}/wallboard/agents?lang={lang}")
            shown = until(lambda: len(agent_cards(browser)) == len(at_work) and agent_cards(browser), 30, lang)
            assert {LABELS[lang][key] for key in ("handled", "aht", "occupancy")} <= set(shown[0]["labels"]), lang
            assert {card["word"] for card in shown} <= set(LABELS[lang].values()), lang
            assert all(not card["clipped"] for card in shown), (lang, [c["clipped"] for c in shown if c["clipped"]])
            assert browser.execute_script("return document.documentElement.lang") == lang
            browser.save_screenshot(str(ARTIFACTS / f"wallboard-agents-{lang}.png"))
        # a team's TV: the worker lists only the agents serving its queues; the offline count is everyone's
        assert document["offline"] == sum(agent["state"] == "offline" for agent in document["agents"])
        support = sorted(a["agent_id"] for a in document["agents"] if "support" in a["queues"])
        assert "wb-lunch" in support and len(support) < len(document["agents"])
        assert [a["agent_id"] for a in worker.get_json("/api/agents?queue=support")["agents"]] == support
        browser.get(f"{worker.url}/wallboard/agents?queue=support")
        on_support = {agent_id for agent_id in support if agent_id in at_work}
        until(lambda: {card["agent_id"] for card in agent_cards(browser)} == on_support, 30, "support's cards")
        summary = browser.execute_script("return document.getElementById('summary').textContent")
        assert str(document["offline"]) in summary, summary
        worker.kill()
        until(lambda: browser.execute_script("return document.body.dataset.stale") == "connection", 15,
              "the stale-data warning")  # fmt: skip
