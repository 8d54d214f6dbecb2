"""The control API under /_sim/: lets a test drive a simulator that runs in another process.

    POST   /_sim/tasks         one TaskScript as a JSON object of its field names, or a list
    POST   /_sim/faults        one Fault object (or a list)
    DELETE /_sim/faults        clear pending faults
    GET    /_sim/requests      the API request log, a list of RequestRecord objects
    GET    /_sim/cancels/{id}  {"count": n}, cancel requests received for that task
    GET    /_sim/in-flight     {"count": n}, API requests received and not yet answered
    POST   /_sim/reset         forget tasks, faults and the log

No authentication. Bad input answers 400 with a Jira-shaped error naming the problem; nothing is
applied from a request that fails, even when it holds a list.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from monitor.simulator.faults import Fault
from monitor.simulator.scripts import TaskScript
from monitor.simulator.wire import Reply, jira_error, json_reply

if TYPE_CHECKING:
    from monitor.simulator.server import Simulator

PREFIX = "/_sim/"


class ControlError(ValueError):
    """Bad control input; its message is returned to the caller."""


def script_from_json(obj: object) -> TaskScript:
    """A TaskScript from a decoded JSON object of its field names; ControlError if invalid."""
    script: TaskScript = _build(TaskScript, obj)
    return script


def fault_from_json(obj: object) -> Fault:
    """A Fault from a decoded JSON object of its field names; ControlError if invalid."""
    fault: Fault = _build(Fault, obj)
    return fault


def handle(sim: Simulator, method: str, path: str, body: bytes) -> Reply:
    """Answer one control request; `path` has no query string."""
    try:
        return _route(sim, method, path, body)
    except ControlError as exc:
        return jira_error(400, str(exc))


def _route(sim: Simulator, method: str, path: str, body: bytes) -> Reply:
    name = path[len(PREFIX) :]
    if name == "tasks" and method == "POST":
        scripts = [script_from_json(item) for item in _as_list(_decode(body))]
        for script in scripts:
            sim.add_task(script)
        return json_reply(200, {"added": [s.task_id for s in scripts]})
    if name == "faults" and method == "POST":
        faults = [fault_from_json(item) for item in _as_list(_decode(body))]
        for fault in faults:
            sim.add_fault(fault)
        return json_reply(200, {"added": len(faults)})
    if name == "faults" and method == "DELETE":
        sim.clear_faults()
        return json_reply(200, {})
    if name == "requests" and method == "GET":
        return json_reply(200, [dataclasses.asdict(r) for r in sim.requests_log()])
    if name.startswith("cancels/") and method == "GET":
        task_id = unquote(name[len("cancels/") :])
        return json_reply(200, {"count": sim.cancel_count(task_id)})
    if name == "in-flight" and method == "GET":
        return json_reply(200, {"count": sim.in_flight})
    if name == "reset" and method == "POST":
        sim.reset()
        return json_reply(200, {})
    known = {"tasks", "faults", "requests", "in-flight", "reset"}
    if name in known or name.startswith("cancels/"):
        return jira_error(405, f"Method {method} is not allowed on {path}")
    return jira_error(404, f"No control endpoint at {path}")


def _decode(body: bytes) -> object:
    try:
        decoded: object = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"request body is not JSON: {exc}") from None
    return decoded


def _as_list(obj: object) -> list[object]:
    return list(obj) if isinstance(obj, list) else [obj]


def _build(cls: type[Any], obj: object) -> Any:
    """An instance of dataclass `cls` from a JSON object, each value checked against the field's
    annotation, so a wrong type is a clear 400 rather than a crash later in a request."""
    name = cls.__name__
    if not isinstance(obj, dict):
        raise ControlError(f"{name}: expected a JSON object, got {_json_type(obj)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(obj) - fields)
    if unknown:
        raise ControlError(f"{name}: unknown field(s) {', '.join(unknown)}")
    for key, value in obj.items():
        if not _conforms(hints[key], value):
            expected = getattr(hints[key], "__name__", None) or str(hints[key])
            raise ControlError(f"{name}.{key}: expected {expected}, got {_json_type(value)}")
    # JSON has arrays where a script has tuples (TaskScript.failures: pairs).
    values = {key: _tuples(value) for key, value in obj.items()}
    try:
        return cls(**values)
    except TypeError as exc:  # a required field is missing
        raise ControlError(f"{name}: {exc}") from None
    except ValueError as exc:
        raise ControlError(str(exc)) from None


def _tuples(value: object) -> object:
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _conforms(hint: object, value: object) -> bool:
    options = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:  # a JSON array: tuple[X, ...] or tuple[X, Y]
        if not isinstance(value, list | tuple):
            return False
        if len(options) == 2 and options[1] is Ellipsis:
            return all(_conforms(options[0], item) for item in value)
        return len(options) == len(value) and all(map(_conforms, options, value))
    if options:
        return any(_conforms(option, value) for option in options)
    # bool is an int in Python but not in JSON: true is no number of seconds.
    if isinstance(value, bool):
        return hint in (bool, object)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, int | float)
    return hint is object or (isinstance(hint, type) and isinstance(value, hint))


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
