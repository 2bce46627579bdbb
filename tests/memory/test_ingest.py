from __future__ import annotations

import random

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kagentbot.config.settings import MemorySettings
from kagentbot.memory.ingest import (
    IngestError, chunk_document, chunk_text, extract, from_text, from_url, sentences,
)

from .conftest import make_settings
from .documents import BINARY_BYTES, CORRUPT_PDF, blank_pdf, docx_with, pdf_with_text

LIMITS = MemorySettings()


def test_sentences_split_on_chinese_and_english_punctuation():
    text = "今天下雨了。我们去哪里？去图书馆！The library opens at 9. It closes at 5."
    parts = [text[s:e].strip() for s, e in sentences(text)]
    assert parts == ["今天下雨了。", "我们去哪里？", "去图书馆！", "The library opens at 9.", "It closes at 5."]


def test_decimal_points_do_not_end_sentences():
    parts = [p for p in sentences("Pi is 3.14 roughly. Next one.")]
    assert len(parts) == 2


def test_chunks_respect_size_and_overlap_on_sentence_boundaries():
    text = "".join(f"这是第{i}句话，内容各不相同。" for i in range(60))
    chunks = chunk_text(text, size=100, overlap=30)
    assert len(chunks) > 5
    assert all(len(c) <= 100 for c in chunks)
    assert all(c.endswith("。") for c in chunks)  # never cut mid-sentence
    for before, after in zip(chunks, chunks[1:]):
        last_sentence = before.split("。")[-2] + "。"
        assert last_sentence in after  # the overlap carries the previous chunk's last sentence
        overlap = after[: after.index(last_sentence) + len(last_sentence)]
        assert before.endswith(overlap) and len(overlap) <= 30
    assert "".join(chunks).count("第59句") >= 1


def test_a_sentence_longer_than_a_chunk_is_cut_hard():
    chunks = chunk_text("x" * 250, size=100, overlap=0)
    assert [len(c) for c in chunks] == [100, 100, 50]


def test_repeated_boilerplate_is_deduplicated():
    settings = MemorySettings(chunk_chars=100, chunk_overlap=0)
    text = ("Confidential footer repeated on every page of this handbook, do not share outside.\n" * 5) + "Unique closing line."
    chunks = chunk_document(from_text(text, settings), settings)
    assert len(chunks) == 2


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("notes.txt", "假期规定：每年十五天。".encode(), "十五天"),
        ("readme.md", b"# Title\n\nSome *markdown* body.", "markdown"),
        ("notes-gbk.txt", "中文编码的文件内容，用于测试自动识别编码。".encode("gb18030"), "自动识别"),
        ("page.html", b"<html><head><title>T</title></head><body><nav>menu</nav><article><h1>Hello</h1>"
                      b"<p>The quarterly report shows revenue grew by twelve percent across all regions.</p>"
                      b"<p>Costs were flat compared with the previous quarter.</p></article></body></html>",
         "twelve percent"),
        ("two.pdf", pdf_with_text(["The first page mentions apples.", "The second page mentions pears."]), "pears"),
        ("memo.docx", docx_with(["Meeting moved to Friday.", "会议改到周五。"]), "周五"),
    ],
)
def test_supported_formats_extract_text(name, data, needle):
    document = extract(data, name, LIMITS)
    assert needle in document.text
    assert document.title == name


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("broken.pdf", CORRUPT_PDF, "could not read the PDF"),
        ("photo.txt", BINARY_BYTES, "binary"),
        ("random.txt", random.Random(7).randbytes(20000), "binary|not readable text"),
        ("fake.docx", b"PK\x03\x04 not really a zip", "could not read the Word file"),
        ("scan.pdf", blank_pdf(2), "no extractable text"),
        ("tool.exe", b"MZ\x90\x00", "unsupported file type"),
        ("empty.txt", b"   \n", "no readable text"),
    ],
)
def test_malformed_files_are_refused_clearly(name, data, message):
    with pytest.raises(IngestError, match=message):
        extract(data, name, LIMITS)


def test_limits_refuse_big_files_long_pdfs_and_too_many_chunks():
    small = MemorySettings(max_upload_mb=0.001, max_pages=2, max_chunks_per_document=3, chunk_chars=100, chunk_overlap=0)
    with pytest.raises(IngestError, match="limit is 0.001 MB"):
        extract(b"a" * 2000, "big.txt", small)
    with pytest.raises(IngestError, match="3 pages; the limit is 2"):
        extract(blank_pdf(3), "long.pdf", small)
    many = from_text(" ".join(f"Sentence number {i} is here." for i in range(40)), MemorySettings())
    with pytest.raises(IngestError, match="over the limit of 3"):
        chunk_document(many, small)


async def _serve(routes):
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_url_fetch_refuses_loopback_and_other_schemes(tmp_path):
    settings = make_settings(tmp_path)
    with pytest.raises(IngestError, match="loopback address"):
        await from_url("http://127.0.0.1:9/secret", settings)
    with pytest.raises(IngestError, match="only http"):
        await from_url("file:///etc/passwd", settings)


async def test_url_fetch_reads_an_allowed_page_and_follows_checked_redirects(tmp_path):
    async def page(request):
        return web.Response(text="<html><body><article><p>The garden opens every day at seven in the "
                                 "morning and closes at dusk during summer.</p></article></body></html>",
                            content_type="text/html")

    async def moved(request):
        raise web.HTTPFound("/garden")

    server = await _serve({"/garden": page, "/old": moved})
    try:
        settings = make_settings(tmp_path, tools={"browse_allowlist": "127.0.0.1/32"})
        document = await from_url(f"http://127.0.0.1:{server.port}/old", settings)
    finally:
        await server.close()
    assert "seven in the morning" in document.text
    assert document.source.endswith("/garden")


async def test_url_fetch_caps_the_body(tmp_path):
    async def huge(request):
        return web.Response(body=b"a" * 5000, content_type="text/plain")

    server = await _serve({"/huge": huge})
    try:
        settings = make_settings(tmp_path, tools={"browse_allowlist": "127.0.0.1"}, memory={"max_upload_mb": 0.001})
        with pytest.raises(IngestError, match="limit"):
            await from_url(f"http://127.0.0.1:{server.port}/huge", settings)
    finally:
        await server.close()
