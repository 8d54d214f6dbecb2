"""`jtm watch`: a live view of the watched tasks, read from the database.

It never talks to Jira: it reads what the daemon records, so it runs beside the daemon, as
often as it likes, as any user who can read the database. Three parts, each testable alone:
`load_view` reads one `View` from the database; `render` turns it into lines of text (pure);
`run` repeats the two, redrawing a terminal in place, or printing plain snapshots when stdout
is not a terminal. Ctrl-C (SIGINT) or SIGTERM quit cleanly with exit code 0.

The ETA comes from the slope of progress over the task's newest RUNNING snapshots; the time
left to the nearest limit (`nearest_limit`, with the daemon's own deadline arithmetic).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, TextIO

import click

from monitor.bulkcounts import issue_counts, issue_counts_text
from monitor.config import Settings
from monitor.deadlines import nearest_limit
from monitor.durations import format_approx
from monitor.health import (
    DaemonHealth,
    DaemonState,
    daemon_health,
    error_kind,
    with_state_files,
)
from monitor.palette import STATUS_COLOURS
from monitor.records import STALE_AFTER_S
from monitor.states import JiraStatus, TaskState
from monitor.store.queries import Filters, Queries
from monitor.taskref import BULK_PREFIX
from monitor.terminal import visible

ETA_POINTS = 20
"""Snapshots the progress slope is taken over: recent enough to follow a change of pace."""

# --- estimates ----------------------------------------------------------------------------


def eta_seconds(points: Sequence[tuple[datetime, int]], now: datetime) -> float | None:
    """Seconds until 100%, from the progress made between the oldest point and `now`.

    Measuring up to `now` (not up to the newest point) makes a task that stopped moving look
    slower with every refresh instead of promising an end that has passed. None when there
    is no progress to measure.
    """
    if len(points) < 2:
        return None
    (first_at, first), (_, last) = points[0], points[-1]
    elapsed = (now - first_at).total_seconds()
    if last <= first or elapsed <= 0:
        return None
    rate = (last - first) / elapsed  # percent per second
    return (100 - last) / rate


# --- the view -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    task_id: str
    label: str | None
    state: str
    status: str | None
    progress: int | None
    age_s: float
    eta_s: float | None
    limit: tuple[str, float] | None
    error: str | None
    timed_out: str | None
    error_kind: str | None = None  # an ErrorKind, when the error was stored with one
    issues: str | None = None  # a bulk operation's counts (`bulkcounts.issue_counts_text`)


@dataclass(frozen=True, slots=True)
class View:
    now: datetime
    rows: list[Row]
    daemon: DaemonHealth
    next_poll_at: datetime | None


def load_view(
    queries: Queries,
    *,
    settings: Settings,
    filters: Filters,
    now: datetime,
    recent_s: float,
    shown: int | None = None,
) -> View:
    """What the view shows at `now`: watched tasks, and the ones ended in the last `recent_s`.

    ETAs are worked out for the first `shown` tasks only (all when None): a terminal shows
    a screenful, and the others would cost a query for nothing.
    """
    tasks = queries.watched(filters, now - timedelta(seconds=recent_s))
    running = [t.ref for t in tasks[:shown] if t.status == JiraStatus.RUNNING]
    points = queries.progress_points(running, ETA_POINTS)
    rows = [
        Row(
            task_id=str(t.ref),
            label=t.label,
            issues=issue_counts_text(issue_counts(t)) if t.bulk else None,
            state=t.state,
            status=t.status,
            progress=t.progress,
            age_s=(now - (t.jira_submitted_at or t.registered_at)).total_seconds(),
            eta_s=eta_seconds(points.get(t.ref, []), now),
            limit=nearest_limit(t, settings.timeouts, now),
            error=t.last_error if t.consecutive_errors else None,
            error_kind=t.last_error_kind,
            timed_out=t.timed_out,
        )
        for t in tasks
    ]
    next_poll = queries.next_poll()
    return View(
        now=now,
        rows=rows,
        daemon=daemon_health(with_state_files(queries.heartbeats())[0], now, STALE_AFTER_S),
        next_poll_at=next_poll[1] if next_poll else None,
    )


# --- rendering ----------------------------------------------------------------------------

_PARTIAL = " ▏▎▍▌▋▊▉"


@dataclass(frozen=True, slots=True)
class Look:
    """How a frame is drawn: `colour` (ANSI styles) and `unicode` (block bars, ·, …)."""

    colour: bool = False
    unicode: bool = False

    def __call__(self, text: str, **styles: Any) -> str:
        wanted = {k: v for k, v in styles.items() if v is not None}
        return click.style(text, **wanted) if self.colour and wanted else text

    def fit(self, text: str, width: int) -> str:
        if len(text) <= width:
            return text
        more = "…" if self.unicode else "~"
        return text[: max(width - 1, 0)] + more if width > 0 else ""

    @property
    def dot(self) -> str:
        return " · " if self.unicode else " | "


PLAIN = Look()


def bar(progress: int | None, width: int, look: Look = PLAIN) -> str:
    """A progress bar `width` characters wide: Unicode blocks, or `[###...]` in plain text."""
    fraction = min(max(progress or 0, 0), 100) / 100
    if not look.unicode:
        inner = width - 2
        filled = round(fraction * inner)
        return "[" + "#" * filled + "." * (inner - filled) + "]"
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (_PARTIAL[part] if part else "")
    return text + "░" * (width - len(text))


def _header(view: View, width: int, look: Look) -> str:
    watching = sum(1 for r in view.rows if r.state == TaskState.WATCHING)
    ended = len(view.rows) - watching
    daemon = view.daemon
    parts: list[tuple[str, dict[str, Any]]] = [(f"{watching} watching", {})]
    if ended:
        parts.append((f"{ended} ended", {}))
    if daemon.state == DaemonState.ALIVE:
        parts.append(
            (f"daemon alive (beat {format_approx(daemon.age_s or 0)} ago)", {"fg": "green"})
        )
        if view.next_poll_at is not None:
            wait = (view.next_poll_at - view.now).total_seconds()
            parts.append(
                (f"next poll in {format_approx(wait)}" if wait >= 1 else "polling now", {})
            )
    elif daemon.state == DaemonState.NEVER_RAN:
        parts.append(("no daemon has run: nothing is polled", {"fg": "red", "bold": True}))
    else:
        parts.append(
            (
                f"daemon {daemon.state} (last beat {format_approx(daemon.age_s or 0)} ago): "
                "nothing is polled",
                {"fg": "red", "bold": True},
            )
        )
    parts.append((view.now.strftime("%H:%M:%SZ"), {"dim": True}))
    while len(parts) > 1 and len(look.dot.join(p for p, _ in parts)) > width:
        parts.pop()  # the clock goes first, then the next poll
    plain = look.dot.join(p for p, _ in parts)
    if len(plain) > width:
        return look.fit(plain, width)
    return look.dot.join(look(p, **s) for p, s in parts)


def _limit_text(limit: tuple[str, float] | None, look: Look) -> tuple[str, str]:
    """The LIMIT cell, plain and styled: red once passed, yellow in its last 5 minutes."""
    if limit is None:
        return "-", "-"
    kind, left = limit
    if left < 0:
        text = f"{kind} over {format_approx(left)}"
        return text, look(text, fg="red", bold=True)
    text = f"{kind} {format_approx(left)} left"
    return text, look(text, fg="yellow") if left < 300 else text


ID_MAX, STATUS_MAX, AGE_W, ETA_W, LIMIT_W = 20, 16, 6, 7, 17


def render(view: View, width: int, height: int | None = None, look: Look = PLAIN) -> list[str]:
    """The lines of one frame, none wider than `width` columns; at most `height` lines.

    Text from Jira and labels is shown with its control characters escaped."""
    lines = [_header(view, width, look)]
    if not view.rows:
        lines.append("no watched tasks: `jtm add ID` registers one")
        return lines
    rows = [_visible_row(r) for r in view.rows]
    id_w = min(max(len(r.task_id) for r in rows), ID_MAX)
    status_w = min(max(len(r.status or "-") for r in rows), STATUS_MAX)
    fixed = id_w + status_w + AGE_W + ETA_W + LIMIT_W + 5 + 2 * 6
    bar_w = min(max((width - fixed) // 2, 10), 30)  # the rest is the note's
    note_w = max(width - fixed - bar_w, 0)
    columns = [
        ("TASK", id_w),
        ("PROGRESS", bar_w + 5),
        ("STATUS", status_w),
        ("AGE", AGE_W),
        ("ETA", ETA_W),
        ("LIMIT", LIMIT_W),
        ("NOTE", 0),
    ]
    titles = "  ".join(t.ljust(w) for t, w in columns).rstrip()
    lines.append(look(look.fit(titles, width), bold=True))
    room = len(rows) if height is None else max(height - 3, 1)
    shown = rows if len(rows) <= room else rows[: room - 1]
    widths = (id_w, bar_w, status_w, note_w)
    lines.extend(_row_line(row, widths, look) for row in shown)
    if len(shown) < len(rows):
        more = len(rows) - len(shown)
        lines.append(look.fit(f"and {more} more: narrow with --label, --status or IDs", width))
    return lines


def _visible_row(row: Row) -> Row:
    def shown(text: str | None) -> str | None:
        return None if text is None else visible(text)

    return replace(
        row,
        task_id=visible(row.task_id),
        label=shown(row.label),
        status=shown(row.status),
        error=shown(row.error),
        timed_out=shown(row.timed_out),
    )


def _row_line(row: Row, widths: tuple[int, int, int, int], look: Look) -> str:
    id_w, bar_w, status_w, note_w = widths
    ended = row.state != TaskState.WATCHING
    colour = STATUS_COLOURS.get(row.status or "")
    pct = "   -" if row.progress is None else f"{row.progress:>3}%"
    if ended:
        eta = "gone" if row.state == TaskState.GONE else "done"
    elif row.status != JiraStatus.RUNNING:
        eta = "-"
    else:
        eta = "?" if row.eta_s is None else "~" + format_approx(row.eta_s)
    limit_plain, limit_styled = _limit_text(None if ended else row.limit, look)
    if row.error:
        bare_id = row.task_id.removeprefix(BULK_PREFIX)
        error = row.error.removeprefix(f"get task {bare_id}: ")
        error = error.removeprefix(f"get bulk task {bare_id}: ")
        note = look(
            look.fit(f"! {error_kind(row.error_kind, row.error, None)}: {error}", note_w), fg="red"
        )
    elif row.timed_out:
        note = look(look.fit(f"timed out ({row.timed_out})", note_w), fg="red")
    else:
        notes = [text for text in (row.issues, row.label) if text]
        note = look.fit("; ".join(notes), note_w)
    cells = [
        look.fit(row.task_id, id_w).ljust(id_w),
        look(bar(row.progress, bar_w, look), fg=colour, dim=ended or None) + " " + pct,
        look(look.fit(row.status or "-", status_w).ljust(status_w), fg=colour),
        format_approx(row.age_s).ljust(AGE_W),
        eta.ljust(ETA_W),
        limit_styled + " " * (LIMIT_W - len(limit_plain)),
        note,
    ]
    return "  ".join(cells).rstrip()


# --- the loop -----------------------------------------------------------------------------

_HIDE_CURSOR, _SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"
_CLEAR, _HOME, _CLEAR_LINE, _CLEAR_BELOW = "\x1b[2J", "\x1b[H", "\x1b[K", "\x1b[J"


class _Quit(Exception):
    pass


def _quit(_signum: int, _frame: FrameType | None) -> None:
    raise _Quit


def run(
    load: Callable[[], View],
    *,
    out: TextIO,
    tty: bool,
    interval_s: float,
    once: bool = False,
    size: Callable[[], tuple[int, int]] = lambda: (100, 40),
) -> int:
    """Show frames from `load` every `interval_s` until Ctrl-C or SIGTERM; returns 0.

    On a terminal (`tty`) each frame is redrawn in place, with colours and (UTF-8) block
    bars; otherwise each is printed as plain ASCII text, followed by a blank line. `once`: one
    frame, then return. `size` gives the terminal's (columns, lines).
    """
    previous = signal.signal(signal.SIGTERM, _quit)
    redraw = tty and not once
    utf8 = (getattr(out, "encoding", None) or "").lower().replace("-", "") == "utf8"
    look = Look(colour=tty and not os.environ.get("NO_COLOR"), unicode=tty and utf8)
    try:
        if redraw:
            out.write(_HIDE_CURSOR + _CLEAR)
        while True:
            width, height = size()
            lines = render(load(), max(width - 1, 40), height if redraw else None, look)
            if redraw:
                out.write(_HOME + "".join(line + _CLEAR_LINE + "\n" for line in lines))
                out.write(_CLEAR_BELOW)
            else:
                out.write("\n".join(lines) + "\n" + ("" if once else "\n"))
            out.flush()
            if once:
                return 0
            time.sleep(interval_s)
    except (KeyboardInterrupt, _Quit):
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if redraw:
            out.write(_SHOW_CURSOR)
            out.flush()
