"""Keep LanceDB's unused REST namespace client from costing half a second at every start.

`import lancedb` imports `lance_namespace`, which imports `lance_namespace_urllib3_client`: a
generated REST client whose package `__init__` imports nine API modules with about 375
`@validate_call` methods. Pydantic builds a validator for each at import, about 0.45 s on this
machine, and a local store never calls them (they talk to a LanceDB REST catalog server).

`defer_package_init()` makes that one package's `__init__` run on first use instead: the
package is created with its path, so `import lance_namespace_urllib3_client.models...` (which
LanceDB needs) works at once, and the first lookup of a name the package itself defines (`ApiClient`,
`TableApi`, ...) runs the real `__init__` and then answers. Nothing is replaced or skipped:
anything that uses the client gets the same module, a moment later. (pylance made its own import
of this client lazy the same way, with a module `__getattr__`.)
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kagentbot.config.settings import Settings

PACKAGE = "lance_namespace_urllib3_client"


_PACKAGE_DUNDERS = frozenset({"__all__", "__version__"})  # dunders the package's __init__ defines


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` code runs on the first lookup of a name it does not hold yet."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") and name.endswith("__") and name not in _PACKAGE_DUNDERS:
            raise AttributeError(name)  # dunder probes (copy, pickle, inspect) do not load it
        if importlib.util.find_spec(f"{self.__name__}.{name}") is not None:
            # `from lance_namespace_urllib3_client import rest` inside one of its own modules:
            # a submodule, imported alone, as it would be from a package already initialised
            return importlib.import_module(f"{self.__name__}.{name}")
        _run_init(self)
        return object.__getattribute__(self, name)


_init_lock = threading.RLock()  # other threads wait for the __init__; its own thread may re-enter


def _run_init(module: types.ModuleType) -> None:
    with _init_lock:
        loader = module.__spec__.loader if module.__spec__ is not None else None
        if not isinstance(loader, _DeferringLoader) or not loader.pending or loader.running:
            return  # already run, or running in this thread (a circular lookup finds what exists)
        loader.running = True
        try:
            loader.real.exec_module(module)  # if it raises, the next lookup runs it again (and raises again)
        finally:
            loader.running = False
        loader.pending = False
        module.__class__ = types.ModuleType  # from now on an ordinary module


class _DeferringLoader(importlib.abc.Loader):
    """The package's loader: holds the real one and whether its `__init__` is still to run."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real
        self.pending = False  # exec_module deferred, the real __init__ not run yet
        self.running = False  # the real __init__ is running (in the thread holding _init_lock)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        self.pending = True
        module.__class__ = _DeferredPackage


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != PACKAGE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None or not spec.submodule_search_locations:
            return spec  # not installed, or not a plain package: import it the usual way
        spec.loader = _DeferringLoader(spec.loader)
        return spec


_FINDER = _Finder()


def defer_package_init() -> None:
    """Install the finder (once) unless the package is already imported."""
    if PACKAGE not in sys.modules and _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def import_lancedb() -> Any:
    """`import lancedb`, with the namespace client deferred (see above)."""
    # lance's Rust core logs routine events (e.g. "No existing dataset ... will be created") as
    # warnings on stderr; only real errors should reach a user's terminal unless they ask for more.
    os.environ.setdefault("LANCEDB_LOG", "error")
    defer_package_init()
    import lancedb

    return lancedb


def start_import(settings: Settings) -> None:
    """Begin importing LanceDB (~1 s, most of a cold start) in a thread when the store exists on
    disk, so that a command about to open it overlaps the import with its own start-up
    (settings, tools, personas). Python's import lock makes the later `import` wait for this one."""
    from kagentbot.memory.startup.deferred import store_absent

    if store_absent(settings):
        return  # nothing to open yet: `ask` then plans its first turn without LanceDB
    # Not a daemon: a command that ends first (`chat` quit at once) waits for it, since the
    # interpreter shutting down under a native import aborts the process (exit 134).
    threading.Thread(target=import_lancedb, name="lancedb-import").start()
