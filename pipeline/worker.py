"""Running one worker in the foreground (``ccpulse worker``)."""

from __future__ import annotations

import logging

from faust.worker import Worker

from pipeline.core.targets import Targets
from pipeline.kafka_io import ensure_topics
from pipeline.settings import Settings
from pipeline.topology import build

log = logging.getLogger("ccpulse.worker")


def run_worker(settings: Settings) -> int:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for chatty in ("kafka", "aiokafka"):  # client libraries log every connection at INFO
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    Targets.load(settings.targets_file)  # a wrong targets file stops us before anything else
    (settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)
    ensure_topics(settings)
    app = build(settings)
    log.info(
        "worker starting: kafka %s, topic %s (%d partitions), web %s",
        settings.kafka_bootstrap,
        settings.topic,
        settings.partitions,
        settings.web_url,
    )
    worker = Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()  # returns only by SystemExit
    return 0
