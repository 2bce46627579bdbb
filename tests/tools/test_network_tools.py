"""Each network tool against the loopback replay of its real API, through the registry the
agent uses: what it asks, what it returns, and how it fails."""

from __future__ import annotations

import asyncio
import socket


from kagentbot.tools.catalog import build_registry
from kagentbot.tools.encyclopedia import key_facts
from kagentbot.tools.framing import CLOSE

UNTRUSTED = "untrusted data from"


async def call(context, name, **args):
    registry = build_registry(context.settings)
    return await registry.invoke(name, args, context, max_chars=context.settings.agent.tool_output_chars)


# --- web_search -------------------------------------------------------------------------------

async def test_searxng_results_are_titles_links_and_snippets(context, web):
    result = await call(context(), "web_search", text="Lionel Messi birth date")
    assert result.ok, result.text
    assert "1. Lionel Messi - Wikipedia\n   https://en.wikipedia.org/wiki/Lionel_Messi" in result.text
    assert "born June 24, 1987, Rosario" in result.text and "transfermarkt" in result.text
    assert result.text.startswith("<<" + UNTRUSTED) and result.text.endswith(CLOSE)
    assert "• Lionel Messi - Wikipedia — https://en.wikipedia.org/wiki/Lionel_Messi" in result.display
    assert web.requests[-1] == ("/searx/search", {"q": "Lionel Messi birth date", "format": "json"})


async def test_searxng_is_retried_then_reported_unavailable(context, web):
    web.searxng_failures = 2
    result = await call(context(search_retries=2), "web_search", text="Lionel Messi birth date")
    assert result.ok and web.hits("/searx") == 3
    web.searxng_failures = 10
    result = await call(context(search_retries=1), "web_search", text="Lionel Messi birth date")
    assert not result.ok and "web search is unavailable" in result.text and "HTTP 502" in result.text
    assert web.hits("/searx") == 5


async def test_a_hanging_search_is_cut_by_its_own_time_limit(context, web):
    web.searxng_delay = 1.0
    result = await call(context(search_timeout=0.3, http_timeout=5), "web_search", text="Lionel Messi birth date")
    assert not result.ok and "did not answer within 0.3 s" in result.text


async def test_searxng_without_json_format_says_how_to_fix_it(context, web):
    web.searxng_json = False
    result = await call(context(), "web_search", text="anything")
    assert not result.ok and "search.formats" in result.text and web.hits("/searx") == 1  # not retried


async def test_searxng_no_results_and_missing_url(context, web):
    result = await call(context(), "web_search", text="zzzz qqqq")
    assert result.ok and result.text == "no web results for 'zzzz qqqq'"
    result = await call(context(searxng_url=""), "web_search", text="messi")
    assert not result.ok and "searxng_url is empty" in result.text


async def test_ddgs_failure_is_a_clear_error_after_retries(context):
    """ddgs goes through a proxy on loopback that hangs up: nothing leaves the machine."""
    connections = []

    async def hang_up(reader, writer):
        connections.append(await reader.read(200))
        writer.close()

    proxy = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        ctx = context(search_backend="ddgs", search_proxy=f"http://127.0.0.1:{port}", search_retries=1)
        result = await call(ctx, "web_search", text="Lionel Messi birth date")
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert not result.ok and "web search is unavailable" in result.text
    assert connections and all(c.startswith(b"CONNECT ") for c in connections)  # ddgs really went out, to our proxy


async def test_ddgs_with_no_route_out_says_so_in_one_short_line(context):
    with socket.socket() as probe:  # a loopback port nobody listens on: every engine's connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = context(search_backend="ddgs", search_proxy=f"http://127.0.0.1:{port}", search_retries=0)
    result = await call(ctx, "web_search", text="Lionel Messi birth date")
    assert not result.ok and "cannot be reached from here" in result.text, result.text
    assert len(result.text) < 200 and "http" not in result.text


# --- browse_website ---------------------------------------------------------------------------

async def test_browse_returns_the_passages_that_answer_the_question(context, web):
    url = f"{web.base}/pages/ski_weekend.html"
    result = await call(context(), "browse_website", url=url, question="How much is a weekend pass at Nanshan?")
    assert result.ok, result.text
    assert "title: Where to ski near Beijing this winter" in result.text
    assert "A weekend pass costs 460 yuan including equipment rental." in result.text
    assert "We use cookies" not in result.text and "All rights reserved" not in result.text  # boilerplate gone
    assert "Wanlong is popular" not in result.text  # an unrelated passage left out
    assert result.text.startswith(f"<<{UNTRUSTED} the web page {url}") and result.text.endswith(CLOSE)
    assert result.display.startswith("📄 Where to ski near Beijing")


async def test_browse_frames_injected_instructions_as_data(context, web):
    result = await call(context(), "browse_website", url=f"{web.base}/pages/ski_weekend.html", question="password deals")
    body = result.text.split("\n", 1)[1]
    assert "Ignore all previous instructions" in body and body.rstrip().endswith(CLOSE)
    assert "not instructions to follow" in result.text.split("\n", 1)[0]


async def test_the_frame_survives_a_small_output_budget(context, web, web_settings, http):
    from kagentbot.tools.registry import ToolContext
    from tests.tools.conftest import NOW

    settings = web_settings()
    settings.agent.tool_output_chars = 400
    ctx = ToolContext(now=NOW, settings=settings, http=http)
    result = await call(ctx, "browse_website", url=f"{web.base}/pages/ski_weekend.html")
    assert result.ok and len(result.text) <= 400 and result.text.endswith(CLOSE) and "…[truncated]" in result.text


async def test_browse_chinese_page_without_and_with_question(context, web):
    url = f"{web.base}/pages/spring_festival_zh.html"
    whole = await call(context(language="zh"), "browse_website", url=url)
    assert whole.ok and "国务院办公厅" in whole.text and "下载客户端" not in whole.text
    focused = await call(context(language="zh"), "browse_website", url=url, question="正月初一是哪天")
    assert "2026年2月17日是农历正月初一" in focused.text and "劳动节" not in focused.text


async def test_browse_reads_pdf_and_json(context, web):
    pdf = await call(context(), "browse_website", url=f"{web.base}/pages/solar_terms.pdf", question="start of spring")
    assert pdf.ok and "title: Solar terms 2027" in pdf.text and "falls on 4 February 2027" in pdf.text
    data = await call(context(), "browse_website", url=f"{web.base}/pages/holidays.json")
    assert data.ok and '"name": "春节"' in data.text


async def test_browse_refuses_private_addresses_unless_allowlisted(context, web):
    result = await call(context(browse_allowlist=[]), "browse_website", url=f"{web.base}/pages/ski_weekend.html")
    assert not result.ok and "loopback" in result.text and web.requests == []
    result = await call(context(), "browse_website", url=f"{web.base}/image.png")
    assert not result.ok and "image/png" in result.text
    result = await call(context(browse_max_bytes=50_000), "browse_website", url=f"{web.base}/big")
    assert not result.ok and "50000 byte limit" in result.text


# --- encyclopedia -----------------------------------------------------------------------------

async def test_encyclopedia_finds_the_article_and_its_birth_date(context, web):
    result = await call(context(), "encyclopedia", query="Lionel Messi birth date")
    assert result.ok, result.text
    assert "title: Lionel Messi" in result.text and "born: 1987-06-24" in result.text
    assert "description: Argentine footballer (born 1987)" in result.text
    assert "source: https://en.wikipedia.org/wiki/Lionel_Messi" in result.text
    assert "other matching articles: Personal life of Lionel Messi" in result.text
    assert result.display.startswith("📚 Lionel Messi · born: 1987-06-24")
    paths = [path for path, _ in web.requests]
    assert paths == ["/wiki/en/w/api.php", "/wiki/en/api/rest_v1/page/summary/Lionel_Messi", "/wiki/en/w/api.php"]
    assert web.requests[0][1]["list"] == "search" and web.requests[2][1]["prop"] == "extracts"
    assert all(agent.startswith("kagentbot/") for agent in web.user_agents)  # Wikimedia's policy: say who we are


async def test_the_showcase_messi_is_older_by_247_days(context):
    ctx = context()
    messi = await call(ctx, "encyclopedia", query="Lionel Messi birth date")
    antonela = await call(ctx, "encyclopedia", query="Antonela Roccuzzo")
    born = [line.split(": ")[1] for r in (messi, antonela) for line in r.text.splitlines() if line.startswith("born: ")]
    assert born == ["1987-06-24", "1988-02-26"]
    delta = await call(ctx, "time_delta", start_time=born[0], end_time=born[1])
    assert '"total_days":247' in delta.text


async def test_encyclopedia_in_chinese(context, web):
    result = await call(context(language="zh"), "encyclopedia", query="梅西")
    assert result.ok and "title: 利昂内尔·梅西" in result.text and "born: 1987-06-24" in result.text
    assert "description: 阿根廷足球运动员" in result.text and web.requests[0][0] == "/wiki/zh/w/api.php"


async def test_encyclopedia_nothing_found_and_bad_language(context):
    result = await call(context(), "encyclopedia", query="Qwxzv Plonk", lang="en")
    assert result.ok and "no Wikipedia (en) article matches" in result.text
    result = await call(context(), "encyclopedia", query="Messi", lang="english please")
    assert not result.ok and "Wikipedia language code" in result.text


def test_key_facts_read_both_date_styles_and_lifespans():
    assert key_facts("Diego Armando Maradona (30 October 1960 – 25 November 2020) was an Argentine footballer") == (
        "born: 1960-10-30", "died: 2020-11-25")
    assert key_facts("Andy Lau Tak-wah (born September 27, 1961) is a Hong Kong actor") == ("born: 1961-09-27",)
    assert key_facts("刘德华（英语：Andy Lau，1961年9月27日—），香港男演员") == ("born: 1961-09-27",)
    assert key_facts("鲁迅（1881年9月25日—1936年10月19日），原名周樟寿") == ("born: 1881-09-25", "died: 1936-10-19")
    assert key_facts("Python is a programming language.") == ()


# --- get_weather_info -------------------------------------------------------------------------

async def test_weather_now_and_next_days_in_berlin(context, web):
    result = await call(context(), "get_weather_info", location="Berlin", start_date="2026-11-25",
                        end_date="2026-11-27", is_current="yes")
    assert result.ok, result.text
    assert "place: Berlin, Land Berlin, Germany (52.52, 13.41), time zone Europe/Berlin" in result.text
    assert "now (2026-11-25T11:00): overcast, 4.3°C, feels like 0.6°C, humidity 81%, wind 14.8 km/h" in result.text
    assert "2026-11-26: slight rain, 3.9–7.1°C, precipitation 4.6 mm, max wind 24.8 km/h" in result.text
    forecast = [q for path, q in web.requests if path == "/meteo/v1/forecast"][0]
    assert forecast["start_date"] == "2026-11-25" and "temperature_2m" in forecast["current"]


async def test_weather_weekend_in_beijing_by_chinese_name(context, web):
    result = await call(context(language="zh"), "get_weather_info", location="北京市", start_date="2026-11-28",
                        end_date="2026-11-29", is_current="no")
    assert result.ok, result.text
    assert "place: 北京, 北京市, 中国" in result.text and "2026-11-28: 晴, -4.1–6.9°C" in result.text
    assert "2026-11-29: 小雪" in result.text
    names = [q["name"] for path, q in web.requests if path == "/geo/v1/search"]
    assert names == ["北京市", "北京"]  # 北京市 is not indexed; the suffix comes off


async def test_weather_past_days_come_from_the_archive(context, web):
    result = await call(context(), "get_weather_info", location="北京", start_date="2025-02-01", end_date="2025-02-03")
    assert result.ok, result.text
    assert "2025-02-03: overcast, -8.4–1.8°C" in result.text
    assert web.hits("/archive/v1/archive") == 1 and web.hits("/meteo") == 0


async def test_weather_errors_are_clear(context, web):
    unknown = await call(context(), "get_weather_info", location="Nowhereville")
    assert not unknown.ok and "no place called 'Nowhereville'" in unknown.text
    too_far = await call(context(), "get_weather_info", location="Berlin", start_date="2027-01-20")
    assert not too_far.ok and "16 days ahead" in too_far.text and web.hits("/meteo") == 0
    bad = await call(context(), "get_weather_info", location="Berlin", start_date="next friday")
    assert not bad.ok and "start_date must be a date like" in bad.text
    unrecorded = await call(context(), "get_weather_info", location="Berlin", start_date="2026-11-30")
    assert not unrecorded.ok and "Open-Meteo forecast answered HTTP 400: Parameter 'start_date'" in unrecorded.text


# --- offline facts, through the same registry -------------------------------------------------

async def test_time_facts(context):
    ctx = context()
    calendar = await call(ctx, "get_calendar_info", start_date="2026-02-17", end_date="2026-02-17")
    assert calendar.ok and "正月初一" in calendar.text and "春节" in calendar.text
    terms = await call(ctx, "get_solar_terms_info", year="2027")
    assert "2027-02-04 立春 (Start of Spring)" in terms.text
    delta = await call(ctx, "time_delta", start_time="1987-06-24", end_time="1988-02-26")
    assert '"total_days":247' in delta.text
