"""Figures of the code's shape, for one checkout or two side by side: lines per package, the
largest classes (lines, methods), `Any` in annotations, attribute probes (`hasattr`, `getattr`
of a fixed name) on our own objects and `__getattr__` fall-throughs, and the mypy result.

    python bench/architecture.py                      # this checkout
    python bench/architecture.py --before /tmp/base   # another checkout (git worktree add /tmp/base REV) beside it

A probe is `hasattr(x, ...)` or `getattr(x, "name"[, default])`: asking an object whether it has
something instead of its type saying so. Probes on objects that are not ours (argparse
namespaces, LanceDB and pyarrow results, the LLM servers' responses, other libraries' errors)
are listed in NOT_OURS by file and the object probed, with the reason, and are not counted as
ours. `getattr(x, variable)` (reflection over field names, plugin markers) is counted apart."""

from __future__ import annotations

import argparse
import ast
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

# (file name, the probed object as written) -> why it is not one of ours
NOT_OURS: dict[tuple[str, str], str] = {
    ("llm.py", "shown"): "the Ollama client's show() response (older servers lack capabilities)",
    ("llm.py", "items"): "the Ollama or OpenAI client's stream (a generator or an AsyncStream)",
    ("discord_adapter.py", "exc.response"): "discord.py's HTTPException response",
    ("main.py", "args"): "an argparse Namespace",
    ("cli.py", "args"): "an argparse Namespace",
    ("store.py", "response"): "LanceDB's list_tables() result (a list in older versions)",
    ("tables.py", "response"): "LanceDB's list_tables() result (a list in older versions)",
    ("store.py", "result"): "LanceDB's update()/add() result (None in older versions)",
    ("tasks.py", "result"): "LanceDB's add() result (None in older versions)",
    ("store.py", "self._conversation.add(rows)"): "LanceDB's add() result (None in older versions)",
    ("conversation.py", "self._tables.conversation.add(rows)"): "LanceDB's add() result (None in older versions)",
    ("store.py", "vectors"): "a pyarrow column or a numpy array",
    ("tasks.py", "vectors"): "a pyarrow column or a numpy array",
}


@dataclass
class Figures:
    lines: Counter[str] = field(default_factory=Counter)  # package -> non-blank lines
    classes: list[tuple[int, int, str]] = field(default_factory=list)  # (lines, methods, name)
    any_annotations: int = 0
    probes_ours: list[str] = field(default_factory=list)
    probes_not_ours: list[str] = field(default_factory=list)
    reflection: list[str] = field(default_factory=list)
    fall_throughs: list[str] = field(default_factory=list)  # classes defining __getattr__
    mypy: str = ""


def package_of(path: Path, root: Path) -> str:
    """`memory`, or `memory/startup` for a subpackage's modules."""
    parts = path.relative_to(root).parts
    return "/".join(parts[:-1]) if len(parts) > 1 else "(top-level modules)"


def measure(tree: Path, run_mypy: bool) -> Figures:
    root = tree / "kagentbot"
    figures = Figures()
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        figures.lines[package_of(path, root)] += sum(1 for line in source.splitlines() if line.strip())
        where = str(path.relative_to(tree))
        read(ast.parse(source), where, path.name, figures)
    if run_mypy:
        figures.mypy = mypy_result(tree)
    return figures


def read(module: ast.Module, where: str, name: str, figures: Figures) -> None:
    for node in ast.walk(module):
        if isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            figures.classes.append((size, len(methods), f"{where}:{node.name}"))
            if any(m.name == "__getattr__" for m in methods):
                figures.fall_throughs.append(f"{where}:{node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            figures.any_annotations += sum(_anys(a.annotation) for a in _arguments(node.args)) + _anys(node.returns)
        elif isinstance(node, ast.AnnAssign):
            figures.any_annotations += _anys(node.annotation)
        elif isinstance(node, ast.Call):
            _probe(node, where, name, figures)


def _arguments(args: ast.arguments) -> list[ast.arg]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    return every + [a for a in (args.vararg, args.kwarg) if a is not None]


def _anys(annotation: ast.expr | None) -> int:
    if annotation is None:
        return 0
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):  # a quoted annotation
        try:
            annotation = ast.parse(annotation.value, mode="eval").body
        except SyntaxError:
            return 0
    return sum(1 for n in ast.walk(annotation)
               if (isinstance(n, ast.Name) and n.id == "Any") or (isinstance(n, ast.Attribute) and n.attr == "Any"))


def _probe(node: ast.Call, where: str, name: str, figures: Figures) -> None:
    called = node.func.id if isinstance(node.func, ast.Name) else ""
    if called not in ("getattr", "hasattr") or len(node.args) < 2:
        return
    target = ast.unparse(node.args[0])
    site = f"{where}:{node.lineno} {called}({target}, {ast.unparse(node.args[1])})"
    fixed_name = isinstance(node.args[1], ast.Constant)
    if called == "getattr" and not fixed_name:
        figures.reflection.append(site)
    elif (name, target) in NOT_OURS:
        figures.probes_not_ours.append(f"{site}: {NOT_OURS[name, target]}")
    else:
        figures.probes_ours.append(site)


def mypy_result(tree: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental", "kagentbot"], cwd=tree,
                          capture_output=True, text=True)
    lines = (done.stdout or done.stderr).strip().splitlines()
    return lines[-1] if lines else f"mypy exited {done.returncode}"


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


def report(columns: dict[str, Figures]) -> None:
    names = list(columns)
    packages = sorted(set().union(*(f.lines for f in columns.values())))
    print("Non-blank lines per package of kagentbot/")
    table([("package", *names)] + [(p, *(str(columns[n].lines.get(p, 0)) for n in names)) for p in packages]
          + [("total", *(str(sum(columns[n].lines.values())) for n in names))])
    print()
    summary = [("figure", *names)]
    summary.append(("largest class", *(_largest(columns[n]) for n in names)))
    summary.append(("largest class in memory/", *(_largest(columns[n], "kagentbot/memory/") for n in names)))
    summary.append(("classes over 300 lines", *(str(sum(1 for c in columns[n].classes if c[0] > 300)) for n in names)))
    summary.append(("`Any` in annotations", *(str(columns[n].any_annotations) for n in names)))
    summary.append(("probes on our own objects", *(str(len(columns[n].probes_ours)) for n in names)))
    summary.append(("__getattr__ fall-throughs", *(str(len(columns[n].fall_throughs)) for n in names)))
    summary.append(("probes on others' objects", *(str(len(columns[n].probes_not_ours)) for n in names)))
    summary.append(("getattr by a variable name", *(str(len(columns[n].reflection)) for n in names)))
    if any(f.mypy for f in columns.values()):
        summary.append(("mypy kagentbot", *(columns[n].mypy for n in names)))
    table(summary)
    for n in names:
        f = columns[n]
        print(f"\n{n}: the five largest classes (lines, methods)")
        for size, methods, where in sorted(f.classes, reverse=True)[:5]:
            print(f"  {size:5} {methods:3}  {where}")
        for title, items in (("probes on our own objects", f.probes_ours), ("__getattr__ fall-throughs", f.fall_throughs),
                             ("probes on others' objects (kept)", f.probes_not_ours),
                             ("getattr by a variable name (kept)", f.reflection)):
            print(f"{n}: {title}: {len(items)}")
            for item in items:
                print(f"  {item}")


def _largest(figures: Figures, under: str = "") -> str:
    size, methods, where = max(c for c in figures.classes if c[2].startswith(under))
    return f"{where.rsplit(':', 1)[1]} ({size} lines, {methods} methods)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="another checkout to show beside this one")
    parser.add_argument("--after", type=Path, default=HERE, help="the checkout to measure (default: this one)")
    parser.add_argument("--no-mypy", action="store_true", help="skip the type check (~30 s a tree)")
    args = parser.parse_args()
    columns: dict[str, Figures] = {}
    if args.before:
        columns["before"] = measure(args.before.resolve(), not args.no_mypy)
    columns["after" if args.before else "this tree"] = measure(args.after.resolve(), not args.no_mypy)
    report(columns)


if __name__ == "__main__":
    main()
