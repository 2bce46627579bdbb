"""`kagentbot kb ...` through its argparse registration and `run`."""

from __future__ import annotations

import argparse

import pytest

from kagentbot.cli import kb as kb_cli

from .conftest import make_settings
from .documents import pdf_with_text


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kagentbot")
    kb_cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["kb", *argv])


@pytest.fixture
def cli(tmp_path, capsys):
    settings = make_settings(tmp_path / "data")

    async def cli(*argv: str) -> tuple[int, str, str]:
        args = parse(*argv)
        code = await args.func(args, settings)
        out = capsys.readouterr()
        return code, out.out, out.err

    return cli


async def test_add_a_file_with_progress_then_list_search_remove(cli, tmp_path):
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(pdf_with_text(["Expense reports are due on the fifth of each month."]))
    code, out, _ = await cli("add", str(pdf), "--user", "ann")
    assert code == 0 and "added as" in out and "user:console:ann" in out and "embedding handbook.pdf" in out
    doc_id = out.split("added as ")[1].split()[0]
    code, out, _ = await cli("list", "--user", "ann")
    assert doc_id in out and "handbook.pdf" in out
    code, out, _ = await cli("search", "when", "are", "expense", "reports", "due", "--user", "ann")
    assert "fifth of each month" in out
    assert "no documents" in (await cli("list", "--user", "ben"))[1]  # another console user
    code, _, err = await cli("remove", doc_id, "--user", "ben")
    assert code == 1 and "no document" in err
    code, out, _ = await cli("remove", doc_id, "--user", "ann")
    assert code == 0 and "removed" in out


async def test_scopes_from_the_cli(cli):
    assert (await cli("add", "Shared", "runbook:", "restart", "the", "queue", "first.", "--scope", "chat:slack:C42"))[0] == 0
    assert "chat:slack:C42" in (await cli("list", "--scope", "chat:slack:C42"))[1]
    assert "no documents" in (await cli("list"))[1]
    assert (await cli("add", "Holiday", "list", "is", "on", "the", "wiki.", "--scope", "global"))[0] == 0
    assert "global" in (await cli("list", "--user", "zed"))[1]
    code, _, err = await cli("add", "text", "--scope", "team")
    assert code == 1 and "--scope must be" in err


async def test_errors_exit_non_zero_with_a_message(cli, tmp_path):
    bad = tmp_path / "fake.pdf"
    bad.write_bytes(b"%PDF-1.4 not really")
    code, _, err = await cli("add", str(bad))
    assert code == 1 and "fake.pdf: could not read the PDF" in err and "WARNING" not in err
    assert "no documents" in (await cli("list"))[1]


async def test_reindex_runs_and_reports(cli):
    await cli("add", "Backups", "run", "nightly", "at", "two.")
    code, out, _ = await cli("reindex")
    assert code == 0 and "reindexed 1 chunks" in out
    assert "Backups run nightly" in (await cli("search", "backup", "schedule"))[1]
