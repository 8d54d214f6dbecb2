"""A Jira Cloud task-API simulator on a real loopback HTTP server.

Used by the test suite, `jtm demo`, `jtm simulate` and the benchmarks. Tasks follow scripted
lifecycles (`TaskScript`) computed from the simulator's clock on each request; `Fault`s make the
site misbehave; every API request is recorded (`RequestRecord`). Modules: `scripts` (lifecycles),
`faults` (misbehaviour), `control` (the /_sim/ API), `wire` (replies, the log), `server`.
"""

from monitor.simulator.control import ControlError, fault_from_json, script_from_json
from monitor.simulator.faults import Fault
from monitor.simulator.scripts import TaskScript, demo_scripts
from monitor.simulator.server import DEFAULT_EMAIL, DEFAULT_TOKEN, Simulator, serve
from monitor.simulator.wire import RequestRecord

__all__ = [
    "DEFAULT_EMAIL",
    "DEFAULT_TOKEN",
    "ControlError",
    "Fault",
    "RequestRecord",
    "Simulator",
    "TaskScript",
    "demo_scripts",
    "fault_from_json",
    "script_from_json",
    "serve",
]
