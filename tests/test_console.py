"""The runners' console output goes through the ``medadv.run`` logger (:mod:`medadv.console`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from medadv.console import RUN_LOGGER, ConsoleHandler, console_logger


@pytest.fixture
def fresh_logger() -> Iterator[logging.Logger]:
    """The ``medadv.run`` logger without handlers, level or propagation changes; restored afterwards."""
    logger = logging.getLogger(RUN_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
    yield logger
    logger.handlers[:] = saved[0]
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_info_goes_to_stdout_and_errors_to_stderr_as_plain_lines(
    fresh_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    log = console_logger()
    assert log is fresh_logger and log.level == logging.INFO and not log.propagate
    log.debug("not shown")
    log.info("medadv: profile smoke")
    log.error("medadv: error: no such profile")
    out, err = capsys.readouterr()
    assert out == "medadv: profile smoke\n"
    assert err == "medadv: error: no such profile\n"
    console_logger()
    assert sum(isinstance(h, ConsoleHandler) for h in log.handlers) == 1, "asked twice, the handler is added once"


def test_a_handler_of_the_callers_replaces_the_console(
    fresh_logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    fresh_logger.addHandler(handler)
    console_logger().info("[1/2] 00_data: done in 1.0 s")
    assert seen == ["[1/2] 00_data: done in 1.0 s"]
    assert capsys.readouterr().out == ""
    assert fresh_logger.propagate, "the caller's logging set-up (the root's handlers) still sees the records"
