"""Fails unless every lower bound in pyproject.toml is a version CI tests.

pyproject.toml claims "works from version X on" for each dependency; CI installs exactly the
versions in constraints.txt (the locked environment) and the newest releases (the newest
environment). So each direct dependency's lower bound must equal its locked version, and
requires-python's lower bound must be the Python running CI. Run inside the locked venv
(needs `packaging`, which transformers depends on), from the repository root.
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version


def lower_bound(spec: SpecifierSet) -> Version | None:
    bounds = [Version(s.version) for s in spec if s.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def main() -> int:
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    locked: dict[str, Version] = {}
    for line in Path("constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            locked[canonicalize_name(name)] = Version(version)

    problems = []
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra_reqs in project.get("optional-dependencies", {}).values():
        requirements += [Requirement(r) for r in extra_reqs]
    for req in requirements:
        name = canonicalize_name(req.name)
        bound = lower_bound(req.specifier)
        have = locked.get(name)
        if have is None:
            problems.append(f"{req.name}: not in constraints.txt (run bash .ci/lock)")
        elif bound is None:
            problems.append(f"{req.name}: no lower bound (claim the tested {have.public})")
        elif Version(have.public) != bound:
            problems.append(f"{req.name}: lower bound {bound} but CI tests {have.public} "
                            f"(set '{req.name}>={have.public}')")

    python_bound = lower_bound(SpecifierSet(project["requires-python"]))
    running = Version(".".join(platform.python_version_tuple()[:2]))
    if python_bound is None or Version(".".join(map(str, python_bound.release[:2]))) != running:
        problems.append(f"requires-python {project['requires-python']!r} but CI runs "
                        f"Python {platform.python_version()}")

    for problem in problems:
        print(f"bounds: {problem}", file=sys.stderr)
    if not problems:
        print(f"bounds: all {len(requirements)} lower bounds in pyproject.toml equal the locked "
              f"versions; requires-python {project['requires-python']} is the tested Python")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
