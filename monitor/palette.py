"""Colours of the closed vocabularies on a terminal (click colour names), defined once."""

from __future__ import annotations

STATUS_COLOURS: dict[str, str] = {
    "COMPLETE": "green",
    "FAILED": "red",
    "DEAD": "red",
    "CANCELLED": "yellow",
    "CANCEL_REQUESTED": "yellow",
    "RUNNING": "cyan",
    "ENQUEUED": "blue",
}
STATE_COLOURS: dict[str, str] = {"watching": "cyan", "gone": "yellow"}
