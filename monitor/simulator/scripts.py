"""Scripted task lifecycles: what a simulated Jira task looks like at any instant.

Everything here is pure. A task's state is a function of its script, the time it was added
(`created`), the time a cancel was accepted (if any) and `now`; the server evaluates it on each
request, so no background thread moves state and a fake clock drives tests exactly.

Timeline of a script added at `created` (seconds on the simulator clock):

    submitted          created - submitted_ago_s (never after `start`)
    start              created + queued_s, or created - started_ago_s when that is set
    progress p% at     start + run_s * p / end      (each whole percent moves lastUpdate)
    finish             start + run_s, at end%       (never, when stall_at is set)
    cancel accepted c  CANCEL_REQUESTED from c, CANCELLED at c + cancel_delay_s

where `end` is the progress the task ends at (`TaskScript.end_progress`): 100 for a task that
completes, less for one that fails or dies partway through, as a real failure does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from monitor.states import JiraStatus

SUBMITTED_BY = 10000
DEFAULT_RESULT = "the task result"
FAILED_AT_PCT = 60
"""Where a FAILED or DEAD script stops by default: Jira leaves a failed task's progress
where the failure found it, never at 100%."""

# Guards against float error turning an exact 30.0 % into 29 when a test sets the clock to a
# precise phase boundary.
_EPSILON = 1e-9

_FINISHED_MESSAGES: dict[str, str] = {
    JiraStatus.COMPLETE: "Task completed",
    JiraStatus.FAILED: "Task failed",
    JiraStatus.DEAD: "Task died before it could finish",
}


@dataclass(frozen=True, slots=True)
class TaskScript:
    """The scripted lifecycle of one simulated task. Times are seconds on the simulator's clock,
    from the moment the script is added (its `created` time).

    Invalid values (negative durations, `stall_at` outside 0..100, an empty id or one containing
    "/", a `result` that is not JSON) raise ValueError on construction.
    """

    task_id: str
    queued_s: float = 0.5
    """ENQUEUED for this long, then RUNNING."""
    run_s: float = 3.0
    """RUNNING for this long (progress moves linearly 0 -> `end_progress`), then `outcome`."""
    outcome: str = "COMPLETE"
    """Terminal status reached; any string is kept as-is, so tests can send unknown statuses."""
    ends_at: int | None = None
    """Progress when `outcome` is reached; None: FAILED_AT_PCT for FAILED and DEAD, else 100."""
    stall_at: int | None = None
    """Progress freezes at this percent once reached; the task then never finishes on its own,
    and lastUpdate/message stop changing."""
    cancellable: bool = True
    """False: cancel answers 400 ["Cancellation of the task is not possible."]."""
    cancel_delay_s: float = 0.5
    """After an accepted cancel: CANCEL_REQUESTED for this long, then CANCELLED."""
    ignore_cancel: bool = False
    """Cancel answers 202 but the task carries on unchanged: a cancel never confirmed."""
    expire_after_s: float | None = None
    """After this long since `created`, GET and cancel answer 404 (Jira's retention)."""
    submitted_ago_s: float = 0.0
    """Jira's `submitted` lies this far before `created`; the phases still count from `created`."""
    started_ago_s: float | None = None
    """If set, the task is already RUNNING at `created`, started this long before it."""
    description: str | None = None
    result: object = None
    """The `result` JSON once terminal; None stands for DEFAULT_RESULT."""
    message_every_pct: int = 10
    """`message` changes each time progress crosses a multiple of this."""
    frozen_elapsed: bool = False
    """`elapsedRuntime` moves only when progress does (it is the time from the start to the
    last update), as Atlassian's own example suggests: it is then no clock."""
    omit_last_update: bool = False
    """The body has no `lastUpdate`."""
    sparse: bool = False
    """The body has only what Atlassian's example for "replace custom field option" has:
    no `progress`, `submitted`, `lastUpdate`, `message` nor `submittedBy`."""
    forbidden: bool = False
    """The account may not see this task (nor cancel it): GET and cancel answer 403."""
    cancel_forbidden: bool = False
    """The account may read the task but not cancel it (a read-only token): cancel is 403."""
    kind: str = "task"
    """"bulk": a bulk issue operation, read at /rest/api/3/bulk/queue/{id} and never
    cancellable (`monitor.simulator.bulk` gives its body). The same id may exist in both kinds."""
    issues: int = 10
    """A bulk operation's `totalIssueCount` (the invalid ones included)."""
    invalid_issues: int = 0
    """A bulk operation's `invalidOrInaccessibleIssueCount`."""
    failures: tuple[tuple[str, str], ...] = ()
    """A bulk operation's failed issues, (issue ID, reason) pairs: an issue repeated has several
    reasons. They are reported as progress reaches them, all of them at the end."""
    iso_times: bool = False
    """A bulk operation's `created`, `started`, `updated` as ISO date-time strings, as the API
    declares them, instead of epoch milliseconds, as its examples show them."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.task_id or "/" in self.task_id:
            problems.append("task_id must be non-empty and contain no '/'")
        durations = {
            "queued_s": self.queued_s,
            "run_s": self.run_s,
            "cancel_delay_s": self.cancel_delay_s,
            "submitted_ago_s": self.submitted_ago_s,
            "expire_after_s": self.expire_after_s,
            "started_ago_s": self.started_ago_s,
        }
        problems += [
            f"{name} must be >= 0" for name, v in durations.items() if v is not None and v < 0
        ]
        if self.stall_at is not None and not 0 <= self.stall_at <= 100:
            problems.append("stall_at must be between 0 and 100")
        if self.ends_at is not None and not 0 <= self.ends_at <= 100:
            problems.append("ends_at must be between 0 and 100")
        if self.ends_at is not None and self.stall_at is not None:
            problems.append("ends_at and stall_at exclude each other (a stalled task never ends)")
        if self.kind not in ("task", "bulk"):
            problems.append("kind must be 'task' or 'bulk'")
        failed = len({issue for issue, _reason in self.failures})
        if self.invalid_issues < 0 or failed + self.invalid_issues > self.issues:
            problems.append("failures and invalid_issues must fit in issues")
        if self.message_every_pct < 1:
            problems.append("message_every_pct must be >= 1")
        try:
            json.dumps(self.result)
        except (TypeError, ValueError):
            problems.append("result must be JSON-serialisable")
        if problems:
            raise ValueError(f"invalid TaskScript {self.task_id!r}: " + "; ".join(problems))

    @property
    def end_progress(self) -> int:
        """The percent progress moves towards over `run_s`, and ends at."""
        if self.ends_at is not None:
            return self.ends_at
        if self.stall_at is None and self.outcome in (JiraStatus.FAILED, JiraStatus.DEAD):
            return FAILED_AT_PCT
        return 100


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as Jira describes it at one instant; times are seconds on the simulator clock.

    `finished` is set exactly when the status is terminal, so `finished is None` means the task
    is still in flight (ENQUEUED, RUNNING, stalled, CANCEL_REQUESTED).
    """

    status: str
    progress: int
    message: str
    submitted: float
    started: float | None
    finished: float | None
    last_update: float
    elapsed_s: float


def start_time(script: TaskScript, created: float) -> float:
    if script.started_ago_s is not None:
        return created - script.started_ago_s
    return created + script.queued_s


def is_expired(script: TaskScript, created: float, now: float) -> bool:
    return script.expire_after_s is not None and now >= created + script.expire_after_s


def view_at(script: TaskScript, created: float, cancel_at: float | None, now: float) -> TaskView:
    """The task at `now`. `cancel_at` is when an accepted cancel arrived (None: never); the
    script is frozen from that instant and the cancel wins even over a finish due during the
    CANCEL_REQUESTED delay, so tests get the documented CANCEL_REQUESTED -> CANCELLED path."""
    if cancel_at is None or now < cancel_at:
        return _scripted_view(script, created, now)
    frozen = _scripted_view(script, created, cancel_at)
    started = frozen.started
    done = cancel_at + script.cancel_delay_s
    if now < done:
        return TaskView(
            status=JiraStatus.CANCEL_REQUESTED,
            progress=frozen.progress,
            message="Cancellation requested",
            submitted=frozen.submitted,
            started=started,
            finished=None,
            last_update=cancel_at,
            elapsed_s=0.0 if started is None else now - started,
        )
    return TaskView(
        status=JiraStatus.CANCELLED,
        progress=frozen.progress,
        message="Task cancelled",
        submitted=frozen.submitted,
        started=started,
        finished=done,
        last_update=done,
        elapsed_s=0.0 if started is None else done - started,
    )


def _scripted_view(script: TaskScript, created: float, now: float) -> TaskView:
    start = start_time(script, created)
    # A task cannot have been submitted after it started: a started_ago_s larger than
    # submitted_ago_s pulls `submitted` back to the start.
    submitted = min(created - script.submitted_ago_s, start)
    if now < start:
        return TaskView(
            status=JiraStatus.ENQUEUED,
            progress=0,
            message="Waiting in the queue",
            submitted=submitted,
            started=None,
            finished=None,
            last_update=submitted,
            elapsed_s=0.0,
        )
    finish = None if script.stall_at is not None else start + script.run_s
    if finish is not None and now >= finish:
        return TaskView(
            status=script.outcome,
            progress=script.end_progress,
            message=_FINISHED_MESSAGES.get(script.outcome, f"Task ended: {script.outcome}"),
            submitted=submitted,
            started=start,
            finished=finish,
            last_update=finish,
            elapsed_s=finish - start,
        )
    progress = _progress(script, now - start)
    shown = progress - progress % script.message_every_pct
    return TaskView(
        status=JiraStatus.RUNNING,
        progress=progress,
        message=f"Processed {shown} of 100 items",
        submitted=submitted,
        started=start,
        finished=None,
        # The instant this whole percent was reached: the last change, frozen once stalled.
        last_update=start + _reached_in(script, progress),
        elapsed_s=now - start,
    )


def _progress(script: TaskScript, running_for: float) -> int:
    end = script.end_progress
    if script.run_s <= 0:
        percent = end
    else:
        percent = max(0, min(end, math.floor(end * running_for / script.run_s + _EPSILON)))
    if script.stall_at is not None:
        percent = min(percent, script.stall_at)
    return percent


def _reached_in(script: TaskScript, progress: int) -> float:
    """Seconds after the start at which `progress` was reached."""
    end = script.end_progress
    return 0.0 if end == 0 else script.run_s * progress / end


def task_json(script: TaskScript, view: TaskView, self_url: str) -> dict[str, object]:
    """The task in Jira's `TaskProgressBeanObject` shape, keys in Jira's order."""
    body: dict[str, object] = {"self": self_url, "id": script.task_id}
    if script.description is not None:
        body["description"] = script.description
    body["status"] = view.status
    sparse = script.sparse
    if not sparse:
        body["message"] = view.message
    if view.finished is not None:
        body["result"] = DEFAULT_RESULT if script.result is None else script.result
    if not sparse:
        body["submittedBy"] = SUBMITTED_BY
        body["progress"] = view.progress
    elapsed = view.elapsed_s
    if script.frozen_elapsed and view.started is not None and view.finished is None:
        elapsed = view.last_update - view.started  # moves only when progress moves
    body["elapsedRuntime"] = round(max(0.0, elapsed) * 1000)
    if not sparse:
        body["submitted"] = _epoch_ms(view.submitted)
    if view.started is not None:
        body["started"] = _epoch_ms(view.started)
    if view.finished is not None:
        body["finished"] = _epoch_ms(view.finished)
    if not (sparse or script.omit_last_update):
        body["lastUpdate"] = _epoch_ms(view.last_update)
    return body


def _epoch_ms(seconds: float) -> int:
    return round(seconds * 1000)


def demo_scripts() -> list[TaskScript]:
    """A small varied set for `jtm simulate` with no other input, ids "10001" to "10008"."""
    return [
        TaskScript("10001", queued_s=0.5, run_s=3.0, description="Delete custom field"),
        TaskScript("10002", queued_s=2.0, run_s=45.0, description="Archive issues by JQL"),
        TaskScript(
            "10003",
            run_s=6.0,
            outcome=JiraStatus.FAILED,
            description="Replace field options",
            result={"errorMessages": ["Option 10200 is in use"], "errors": {}},
        ),
        TaskScript(
            "10004", run_s=8.0, outcome=JiraStatus.DEAD, ends_at=85, description="Delete project"
        ),
        TaskScript("10005", run_s=20.0, stall_at=37, description="Bulk set issue property"),
        TaskScript(
            "10006",
            run_s=10.0,
            stall_at=60,
            cancellable=False,
            description="Change workflow scheme",
        ),
        TaskScript("10007", run_s=4.0, expire_after_s=20.0, description="Delete priority"),
        TaskScript(
            "10008",
            run_s=30.0,
            stall_at=12,
            ignore_cancel=True,
            submitted_ago_s=600.0,
            started_ago_s=120.0,
            description="Change security level",
        ),
    ]
