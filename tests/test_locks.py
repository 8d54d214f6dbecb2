"""The lock files pin what the README's installs ask for: `pip install -c
requirements/runtime.lock .` with the apprise or postgresql extra gets exact versions, and
dev.lock (on top of runtime.lock) pins nothing twice."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OPERATORS_EXTRAS = ("apprise", "postgresql")  # the extras the README installs for operators


def pins(name: str) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in (ROOT / "requirements" / name).read_text().splitlines():
        if line.strip() and not line.startswith(("#", "-r ")):
            package, version = line.split("==")
            found[canonicalize_name(package)] = Version(version)
    return found


def test_the_runtime_lock_pins_the_dependencies_and_the_operators_extras() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = [*project["dependencies"], *(r for e in OPERATORS_EXTRAS for r in extras[e])]
    locked = pins("runtime.lock")
    for requirement in map(Requirement, wanted):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement} is not pinned in runtime.lock"
        assert requirement.specifier.contains(locked[name]), f"{name}=={locked[name]}"
        for extra in requirement.extras:  # psycopg[binary] brings psycopg-binary
            assert canonicalize_name(f"{name}-{extra}") in locked, requirement


def test_dev_lock_adds_to_the_runtime_lock_without_repeating_it() -> None:
    assert "-r runtime.lock" in (ROOT / "requirements" / "dev.lock").read_text().splitlines()
    assert pins("dev.lock").keys() & pins("runtime.lock").keys() == set()
