"""`python -m pyetcd.serving SETTINGS_JSON`: one serving process of a member (started by its core)."""

from __future__ import annotations

import faulthandler
import signal
import sys

from pyetcd.logs import setup_logging
from pyetcd.process_run import run_async
from pyetcd.serving.settings import ServingSettings


def main(argv: list[str]) -> int:
    faulthandler.enable()  # a crash leaves its stack in the member's log
    settings = ServingSettings.from_json(argv[0])
    from pyetcd.serving.process import die_with_parent, serve

    die_with_parent(settings.core_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the core's to handle; it stops us
    setup_logging(settings.log_level, settings.logger, settings.log_outputs)
    return run_async(serve(settings))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
