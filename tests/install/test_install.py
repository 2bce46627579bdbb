"""The package installs as the README says: every module imports, every import is declared."""
import ast
import importlib.metadata
import pkgutil
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import kagentbot

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "kagentbot"


def _all_modules() -> list[str]:
    prefix = kagentbot.__name__ + "."
    return [kagentbot.__name__] + sorted(
        info.name for info in pkgutil.walk_packages(kagentbot.__path__, prefix)
    )


def _top_level_imports() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"kagentbot"}


def _declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalise(re.split(r"[\[<>=!~; ]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_module_imports_in_a_fresh_interpreter():
    modules = _all_modules()
    assert len(modules) > 40
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    result = subprocess.run([sys.executable, "-c", script, *modules], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]


def test_every_third_party_import_is_a_declared_dependency():
    owners = importlib.metadata.packages_distributions()
    declared = _declared_distributions()
    undeclared = {
        name: owners.get(name, ["(not installed)"])
        for name in _top_level_imports()
        if not declared.intersection(_normalise(dist) for dist in owners.get(name, []))
    }
    assert undeclared == {}


def test_html_extraction_has_its_cleaner():
    # jusText needs lxml's html cleaner, which lives in its own package since lxml 5.2.
    import justext  # noqa: F401  (imports lxml.html.clean at once)
    import lxml.html.clean  # noqa: F401
