"""Converter output capture: a logging handler a library makes while output goes to the log file keeps working
after the capture ends, writing wherever stderr then points, instead of printing "--- Logging error ---"."""

from __future__ import annotations

import logging

from compressor.native_output import captured


def test_a_handler_made_during_a_capture_follows_stderr_afterwards(tmp_path, capfd):
    logger = logging.getLogger("edgeforge.test.library")
    logger.propagate = False
    try:
        with captured(tmp_path / "first.log"):
            logger.addHandler(logging.StreamHandler())  # bound to the stream stderr is now: the first log file
            logger.warning("during the first capture")
        logger.warning("between captures")
        with captured(tmp_path / "second.log"):
            logger.warning("during the second capture")
        out, err = capfd.readouterr()
        assert "Logging error" not in out + err and "Traceback" not in out + err
        assert "between captures" in err
        assert "during the first capture" in (tmp_path / "first.log").read_text()
        assert "during the second capture" in (tmp_path / "second.log").read_text()
    finally:
        logger.handlers.clear()
