"""``python -m api.webhooks [--name NAME]``: the webhook delivery consumer (``trainapi webhooks``)."""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading
from types import FrameType

from api.webhooks.delivery import Deliverer
from store.artifacts import Artifacts
from store.stores import Stores
from trainapi import logs
from trainapi.settings import Settings


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per POST otherwise; the deliveries log has them
    parser = argparse.ArgumentParser(prog="python -m api.webhooks", description=__doc__)
    parser.add_argument("--name", default="webhooks", help="consumer name; the host name is appended")
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_format)
    if not settings.redis_url:
        logging.error("TRAINAPI_REDIS_URL is not set (or use `trainapi serve`)")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    name = f"{args.name}@{socket.gethostname()}"
    logging.getLogger("trainapi.webhooks").info("webhook delivery consumer %s started", name)
    Deliverer(settings, Stores.open(settings.redis_url, Artifacts.open(settings)), name).run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
