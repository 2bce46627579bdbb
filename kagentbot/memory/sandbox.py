"""Parsing an untrusted file in a child process with a CPU and memory budget, so that one
upload (a PDF or Word bomb, pathological HTML) cannot stall the bot or exhaust its memory.

Children are forked from a small server process (multiprocessing's forkserver) that has the
parsers imported already, so each parse starts in milliseconds from a clean, single-threaded
process. The child sets its own limits (RLIMIT_CPU, RLIMIT_AS) before touching the data; the
parent waits a little longer than the CPU budget in wall time and kills it after that."""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# "__main__" first: the server imports the program's main module once, so children need not
PRELOAD = ["__main__", "kagentbot.memory.ingest", "pypdf", "kagentbot.memory.startup.warm_parsers"]
_lock = threading.Lock()
_context: Any = None


class BudgetExceeded(Exception):
    """The child ran out of CPU time, memory or wall time; the text says which."""


class ParseFailed(Exception):
    """The parser raised something unexpected (its type and text, as the child saw them)."""


@dataclass(frozen=True)
class Budget:
    cpu_seconds: float  # 0: no child process, no limits (trusted input only)
    memory_mb: int

    @property
    def wall_seconds(self) -> float:
        return self.cpu_seconds * 2 + 5  # a child waiting on nothing still ends


def run_limited(func: Callable[..., Any], args: tuple, budget: Budget, expected: tuple[type[Exception], ...] = ()) -> Any:
    """`func(*args)` in a budgeted child; returns its result, re-raises an `expected` exception,
    and raises BudgetExceeded or ParseFailed for the rest. Blocking: call it from a worker
    thread. `func`, its arguments and the expected exceptions must pickle."""
    context = _forkserver()
    if budget.cpu_seconds <= 0 or context is None:
        return func(*args)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, budget, func, args, expected), daemon=True)
    child.start()
    sender.close()
    try:
        outcome = receiver.recv() if receiver.poll(budget.wall_seconds) else None
    except EOFError:  # the child died without a word: killed at its CPU limit, or crashed
        outcome = None
    finally:
        receiver.close()
        exitcode = _reap(child)
    return _unpack(outcome, exitcode, budget)


def _unpack(outcome: tuple[str, Any] | None, exitcode: int | None, budget: Budget) -> Any:
    if outcome is None:
        if exitcode in (-signal.SIGXCPU, -signal.SIGKILL) or exitcode is None:
            raise BudgetExceeded(f"reading it took more than {budget.cpu_seconds:g} s of CPU time")
        raise BudgetExceeded(f"reading it failed (more than {budget.memory_mb} MB of memory, or a parser crash)")
    kind, value = outcome
    if kind == "ok":
        return value
    if kind == "memory" or (kind == "failed" and "memory" in value.lower()):
        raise BudgetExceeded(f"reading it needed more than {budget.memory_mb} MB of memory")
    if kind == "failed":
        raise ParseFailed(value)
    raise value


def _child(sender: Any, budget: Budget, func: Callable[..., Any], args: tuple, expected: tuple = ()) -> None:
    _limit(budget)
    try:
        outcome: tuple[str, Any] = ("ok", func(*args))
    except MemoryError:
        outcome = ("memory", None)
    except expected as exc:  # the function's own refusals go back as they are
        outcome = ("error", exc)
    except Exception as exc:  # noqa: BLE001 - parsers' exceptions may not pickle; their text does
        outcome = ("failed", f"{type(exc).__name__}: {exc}"[:500])
    try:
        sender.send(outcome)
    finally:
        sender.close()


def _limit(budget: Budget) -> None:
    import resource

    cpu = max(1, int(budget.cpu_seconds + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))  # SIGXCPU at the soft limit, SIGKILL a second later
    memory = budget.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _reap(child: Any) -> int | None:
    """Wait for the child to end (killing it past its time); its exit code."""
    child.join(0.5)
    if child.is_alive():
        child.kill()
        child.join(5)
    exitcode = child.exitcode
    if exitcode is not None:
        child.close()
    return exitcode


def _forkserver() -> Any:
    """The forkserver context, its parsers preloaded; None where there is none (Windows)."""
    global _context
    with _lock:
        if _context is None:
            try:
                import resource  # noqa: F401 - POSIX only
                context = multiprocessing.get_context("forkserver")
            except (ImportError, ValueError):
                log.warning("no forkserver on this platform: documents are parsed without a CPU and memory budget")
                _context = False
                return None
            context.set_forkserver_preload(PRELOAD)
            _context = context
    return _context or None
