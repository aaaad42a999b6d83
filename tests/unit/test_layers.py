"""The layers of the tree: no import of omnibot's own code goes upwards or sideways between services.

Bottom to top: `omnibot.agents` (the pure agents library) imports nothing of omnibot but itself;
`omnibot.shared` imports agents and itself; a service imports agents, shared and itself, never
another service; a tool (the launcher, replay, the testing kit) may import services and other
tools; nothing of the product imports a tool. Every import counts, also those inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

AGENTS = "agents"
SHARED = "shared"
SERVICES = frozenset({"ingress", "dialog", "egress", "admin", "sandbox"})
TOOLS = frozenset({"launcher", "replay", "testkit"})


def layer(module: str) -> tuple[int, str]:
    """(level, package) of an omnibot module: 1 agents, 2 shared, 3 a service, 4 a tool."""
    parts = module.split(".")
    if parts[0] != "omnibot" or len(parts) < 2:
        raise ValueError(f"{module} is not an omnibot module")
    package = parts[1]
    if package == AGENTS:
        return 1, package
    if package == SHARED:
        return 2, package
    if package in SERVICES:
        return 3, package
    if package in TOOLS:
        return 4, package
    raise ValueError(f"{module}: package omnibot.{package} has no layer; add it to tests/unit/test_layers.py")


def allowed(importer: str, imported: str) -> bool:
    """May module `importer` import module `imported`? Both are omnibot modules."""
    level, package = layer(importer)
    to_level, to_package = layer(imported)
    if package == to_package:
        return True
    if level == 3:  # a service: the two libraries below it, never another service
        return to_level < 3
    return to_level < level or (level == 4 and to_level == 4)


def imported_modules(module: str, source: str, *, is_package: bool = False) -> Iterator[str]:
    """The omnibot modules that `source` (the text of `module`) imports, relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names = [".".join([*base, *([node.module] if node.module else [])])]
            else:
                names = [node.module or ""]
        else:
            continue
        for name in names:
            if name.startswith("omnibot.") and name != "omnibot":
                yield name


def crossings(sources: Mapping[str, str], packages: frozenset[str] = frozenset()) -> list[str]:
    """Every import between omnibot modules that crosses the layers, as readable lines.

    `sources` maps module names to their text; `packages` names the ones that are `__init__`s."""
    found: list[str] = []
    for module, source in sorted(sources.items()):
        for imported in imported_modules(module, source, is_package=module in packages):
            try:
                ok = allowed(module, imported)
            except ValueError as exc:
                found.append(str(exc))
                continue
            if not ok:
                found.append(f"{module} imports {imported}")
    return found


def product_modules() -> tuple[dict[str, str], frozenset[str]]:
    """The text of every module under shared/omnibot and services/*/omnibot, by module name."""
    roots = [ROOT / "shared", *sorted(p for p in (ROOT / "services").iterdir() if (p / "omnibot").is_dir())]
    sources: dict[str, str] = {}
    packages: set[str] = set()
    for root in roots:
        for path in sorted((root / "omnibot").rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
                packages.add(".".join(parts))
            sources[".".join(parts)] = path.read_text(encoding="utf-8")
    return sources, frozenset(packages)


def test_no_import_crosses_the_layers() -> None:
    sources, packages = product_modules()

    assert crossings(sources, packages) == []


def test_the_tree_has_every_layer() -> None:
    sources, _ = product_modules()
    found = {layer(module) for module in sources}

    assert {level for level, _ in found} == {1, 2, 3, 4}
    assert {package for _, package in found} >= SERVICES


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("omnibot.agents.engine", "from omnibot.shared.messages import SendText"),
        ("omnibot.agents.engine", "def f():\n    import omnibot.dialog.turns\n"),
        ("omnibot.shared.chats", "from omnibot.dialog import outbox"),
        ("omnibot.egress.service", "from omnibot.dialog.fetch import ExternalFetcher"),
        ("omnibot.admin.operations", "from omnibot.replay.cli import main"),
        ("omnibot.dialog.service", "from omnibot.testkit import ports"),
        ("omnibot.shared.amqp", "from omnibot.launcher.cli import main"),
        ("omnibot.dialog.turns", "from omnibot.nowhere import x"),
    ],
)
def test_a_crossing_import_is_found(module: str, source: str) -> None:
    assert len(crossings({module: source})) == 1


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("omnibot.agents.engine", "from omnibot.agents.agent import Agent\nfrom . import templates"),
        ("omnibot.shared.chats", "from omnibot.agents import handoff"),
        ("omnibot.dialog.turns", "from omnibot.shared.chats import ChatRecord\nfrom .inbox import x"),
        ("omnibot.launcher.cli", "from omnibot.admin import operations\nfrom omnibot.replay import cli"),
        (
            "omnibot.replay.pipeline_runner",
            "from omnibot.testkit.services import run\nimport omnibot.sandbox",
        ),
    ],
)
def test_an_allowed_import_passes(module: str, source: str) -> None:
    assert crossings({module: source}) == []


def test_relative_imports_are_resolved() -> None:
    assert list(imported_modules("omnibot.egress.service", "from ..dialog import fetch")) == [
        "omnibot.dialog"
    ]
    assert list(imported_modules("omnibot.egress", "from .deliver import D", is_package=True)) == [
        "omnibot.egress.deliver"
    ]
