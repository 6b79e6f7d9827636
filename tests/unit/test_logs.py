"""master/logs.py: both formats carry the fields callers pass with `extra=`."""

from __future__ import annotations

import json
import logging
import sys

from master.logs import JSONFormatter, TextFormatter


def record(msg: str, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("flotilla.controllers", logging.INFO, __file__, 1, msg, None, None)
    rec.__dict__.update(extra)
    return rec


def test_json_line_holds_message_and_fields() -> None:
    out = json.loads(JSONFormatter().format(record("sync failed", controller="deployment", requeues=2, err=ValueError("x"))))
    assert out["msg"] == "sync failed" and out["level"] == "info" and out["logger"] == "flotilla.controllers"
    assert out["controller"] == "deployment" and out["requeues"] == 2 and out["err"] == "x"


def test_text_line_appends_fields_quoting_what_needs_it() -> None:
    line = TextFormatter().format(record("sync failed, retrying", controller="deployment", key="default/web",
                                         error='409 Conflict: "web" was modified', requeues=2, empty=""))
    assert line.endswith(' INFO flotilla.controllers: sync failed, retrying controller=deployment key=default/web '
                         'error="409 Conflict: \\"web\\" was modified" requeues=2 empty=""')


def test_text_line_without_fields_is_unchanged_and_a_traceback_stays_below() -> None:
    assert TextFormatter().format(record("plain")).endswith("flotilla.controllers: plain")
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        rec = record("crashed", key="a")
        rec.exc_info = sys.exc_info()
    first, *rest = TextFormatter().format(rec).splitlines()
    assert first.endswith("crashed key=a") and rest[0].startswith("Traceback") and "ZeroDivisionError" in rest[-1]


def test_text_fields_follow_a_multi_line_message_and_odd_values_are_quoted() -> None:
    line = TextFormatter().format(record("first\nsecond", tab="a\tb", cr="x\ry"))
    assert line.endswith('first\nsecond tab="a\\tb" cr="x\\ry"')
