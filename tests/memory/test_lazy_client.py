"""LanceDB's REST namespace client is imported on first use, not at start, and nothing changes for
whoever does use it. Each case runs in a fresh interpreter: the test process has LanceDB loaded."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_local_store_works_without_loading_the_rest_client(tmp_path: Path) -> None:
    out = run("""
        import sys
        from kagentbot.memory.startup.lazy_client import import_lancedb
        lancedb = import_lancedb()
        db = lancedb.connect(sys.argv[1])
        table = db.create_table("t", data=[{"id": 1, "text": "bamboo forest", "vector": [0.1, 0.2]}])
        table.create_fts_index("text")
        print(table.search("bamboo", query_type="fts").limit(1).to_list()[0]["id"])
        print(table.search([0.1, 0.2]).limit(1).to_list()[0]["id"])
        print(sorted(name for name in sys.modules if name.startswith("lance_namespace_urllib3_client.api")))
    """, str(tmp_path / "db"))
    assert out.split("\n")[:3] == ["1", "1", "[]"]


def test_the_client_loads_whole_on_first_use() -> None:
    out = run("""
        import sys, types
        from kagentbot.memory.startup.lazy_client import import_lancedb
        import_lancedb()
        import lance_namespace_urllib3_client as client
        from lance_namespace_urllib3_client import TableApi, Configuration
        print(client.ApiClient.__name__, TableApi.__name__, Configuration.__name__, client.__version__)
        print(type(client) is types.ModuleType, "lance_namespace_urllib3_client.api.table_api" in sys.modules)
        from lancedb.namespace import connect_namespace  # LanceDB's own use of the client
        print(callable(connect_namespace))
    """)
    lines = out.split("\n")
    assert lines[0].startswith("ApiClient TableApi Configuration ")
    assert lines[0].split()[-1][0].isdigit()
    assert lines[1:3] == ["True True", "True"]


def test_a_client_imported_before_is_left_alone() -> None:
    out = run("""
        import sys, types
        import lance_namespace_urllib3_client
        from kagentbot.memory.startup.lazy_client import _FINDER
        from kagentbot.memory.startup.lazy_client import import_lancedb
        import_lancedb()
        print(type(sys.modules["lance_namespace_urllib3_client"]) is types.ModuleType, _FINDER in sys.meta_path)
    """)
    assert out.strip() == "True False"


def test_its_own_submodules_import_directly_and_threads_wait_for_the_init() -> None:
    out = run("""
        import sys, threading
        from kagentbot.memory.startup.lazy_client import import_lancedb
        import_lancedb()
        import lance_namespace_urllib3_client.api_client as api_client  # does `from <package> import rest`
        print(api_client.ApiClient.__name__, "lance_namespace_urllib3_client.api.table_api" in sys.modules)
        import lance_namespace_urllib3_client as client
        got, errors = [], []
        def look():
            try:
                got.append(client.TableApi.__name__)
            except Exception as exc:
                errors.append(repr(exc))
        threads = [threading.Thread(target=look) for _ in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        print(got, errors, client.__version__[0].isdigit())
    """)
    assert out.split("\n")[:2] == ["ApiClient False", "['TableApi', 'TableApi', 'TableApi', 'TableApi'] [] True"]
