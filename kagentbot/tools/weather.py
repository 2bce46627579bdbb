"""`get_weather_info`: Open-Meteo, no key. Geocode the place (Chinese or English name), then
the forecast API for the recent past, today and up to 16 days ahead, the archive API for
older dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kagentbot.tools.framing import as_data
from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool
from kagentbot.tools.timetools import parse_day
from kagentbot.tools.webapi import api_session, get_json, output_budget, tool_settings

if TYPE_CHECKING:
    import aiohttp  # annotations only

    from kagentbot.config.settings import ToolsSettings

FORECAST_DAYS_AHEAD = 16
FORECAST_DAYS_BACK = 90  # older days come from the archive
MAX_DAYS = 31
DAILY = "weather_code,temperature_2m_max,temperature_2m_min,precipitation_sum,wind_speed_10m_max"
CURRENT = "temperature_2m,relative_humidity_2m,apparent_temperature,weather_code,wind_speed_10m"
ADMIN_SUFFIXES = ("特别行政区", "自治区", "市", "省", "县", "区")
WMO = {  # WMO weather interpretation codes, as Open-Meteo documents them
    0: ("clear sky", "晴"), 1: ("mainly clear", "晴间多云"), 2: ("partly cloudy", "多云"), 3: ("overcast", "阴"),
    45: ("fog", "雾"), 48: ("rime fog", "雾凇"), 51: ("light drizzle", "小毛毛雨"), 53: ("drizzle", "毛毛雨"),
    55: ("dense drizzle", "大毛毛雨"), 56: ("freezing drizzle", "冻毛毛雨"), 57: ("dense freezing drizzle", "强冻毛毛雨"),
    61: ("slight rain", "小雨"), 63: ("rain", "中雨"), 65: ("heavy rain", "大雨"), 66: ("freezing rain", "冻雨"),
    67: ("heavy freezing rain", "强冻雨"), 71: ("slight snow", "小雪"), 73: ("snow", "中雪"), 75: ("heavy snow", "大雪"),
    77: ("snow grains", "米雪"), 80: ("rain showers", "阵雨"), 81: ("heavy rain showers", "强阵雨"),
    82: ("violent rain showers", "暴雨"), 85: ("snow showers", "阵雪"), 86: ("heavy snow showers", "强阵雪"),
    95: ("thunderstorm", "雷暴"), 96: ("thunderstorm with hail", "雷暴伴冰雹"), 99: ("thunderstorm with heavy hail", "强雷暴伴冰雹"),
}


@dataclass(frozen=True)
class Place:
    name: str
    country: str
    admin: str
    latitude: float
    longitude: float
    timezone: str

    def label(self) -> str:
        return ", ".join(part for part in (self.name, self.admin, self.country) if part)


@tool(network=True)
async def get_weather_info(
    location: str, start_date: str = "", end_date: str = "", is_current: str = "no", *, context: ToolContext
) -> ToolOutput:
    """Weather for a place: current conditions, daily forecast up to 16 days ahead, or past days.

    Args:
        location: a city or place name in Chinese or English, e.g. 北京 or Paris
        start_date: first day, e.g. 2026-07-14 (default today)
        end_date: last day, e.g. 2026-07-16 (default start_date)
        is_current: "yes" for the conditions right now, "no" for daily figures
    """
    settings = tool_settings(context)
    async with api_session(context) as session:
        place = await geocode(session, location, context.language, settings)
        today = _today(context, place)
        start = parse_day(start_date, "start_date") if start_date.strip() else today
        end = parse_day(end_date, "end_date") if end_date.strip() else start
        start, end = min(start, end), max(start, end)
        _check_range(start, end, today)
        body = await _daily(session, place, start, end, today, settings, current=_yes(is_current))
    return render_weather(place, body, context.language, output_budget(context))


async def geocode(session: aiohttp.ClientSession, location: str, language: str, settings: ToolsSettings) -> Place:
    name = " ".join(location.split())
    if not name:
        raise ToolError("location is empty: name a city or place")
    candidates = [name] + [name[: -len(s)] for s in ADMIN_SUFFIXES if name.endswith(s) and len(name) > len(s) + 1]
    for candidate in candidates:  # 北京市 is indexed as 北京
        params = {"name": candidate, "count": "5", "language": "zh" if _has_cjk(candidate) else (language or "en"), "format": "json"}
        body = await get_json(session, settings.geocoding_url.rstrip("/") + "/v1/search", params=params,
                              service="Open-Meteo geocoding", timeout=settings.http_timeout, user_agent=settings.user_agent)
        if body.get("results"):
            top = body["results"][0]
            return Place(top.get("name", candidate), top.get("country", ""), top.get("admin1", ""),
                         top["latitude"], top["longitude"], top.get("timezone", "UTC"))
    raise ToolError(f"no place called {location!r} was found; try the city's name, e.g. Beijing or 北京")


def _today(context: ToolContext, place: Place) -> date:
    try:
        return context.now.astimezone(ZoneInfo(place.timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return context.now.date()


def _check_range(start: date, end: date, today: date) -> None:
    if (end - start).days >= MAX_DAYS:
        raise ToolError(f"ask for at most {MAX_DAYS} days at a time")
    if end > today + timedelta(days=FORECAST_DAYS_AHEAD - 1):
        raise ToolError(f"forecasts reach only {FORECAST_DAYS_AHEAD} days ahead (until {today + timedelta(days=FORECAST_DAYS_AHEAD - 1)})")
    if start < date(1940, 1, 1):
        raise ToolError("weather records start in 1940")


async def _daily(session: aiohttp.ClientSession, place: Place, start: date, end: date, today: date, settings: ToolsSettings, *, current: bool) -> dict:
    params = {"latitude": str(place.latitude), "longitude": str(place.longitude), "daily": DAILY,
              "timezone": "auto", "start_date": start.isoformat(), "end_date": end.isoformat()}
    if start >= today - timedelta(days=FORECAST_DAYS_BACK):
        url, service = settings.open_meteo_url.rstrip("/") + "/v1/forecast", "Open-Meteo forecast"
        if current:
            params["current"] = CURRENT
    else:
        url, service = settings.open_meteo_archive_url.rstrip("/") + "/v1/archive", "Open-Meteo archive"
    return await get_json(session, url, params=params, service=service, timeout=settings.http_timeout, user_agent=settings.user_agent)


def render_weather(place: Place, body: dict, language: str, budget: int = 2800) -> ToolOutput:
    zh = language == "zh"
    lines = [f"place: {place.label()} ({place.latitude:.2f}, {place.longitude:.2f}), time zone {body.get('timezone', place.timezone)}"]
    if current := body.get("current"):
        lines.append(_current_line(current, body.get("current_units", {}), zh))
    lines += _daily_lines(body.get("daily", {}), body.get("daily_units", {}), zh)
    display = "🌤 " + "\n".join(lines[:8])
    return ToolOutput(text=as_data("Open-Meteo", "\n".join(lines), budget), display=display)


def _current_line(current: dict, units: dict, zh: bool) -> str:
    parts = [f"now ({current.get('time', '?')}): {_describe(current.get('weather_code'), zh)}",
             f"{current.get('temperature_2m')}{units.get('temperature_2m', '°C')}"]
    if current.get("apparent_temperature") is not None:
        parts.append(f"feels like {current['apparent_temperature']}{units.get('apparent_temperature', '°C')}")
    if current.get("relative_humidity_2m") is not None:
        parts.append(f"humidity {current['relative_humidity_2m']}%")
    if current.get("wind_speed_10m") is not None:
        parts.append(f"wind {current['wind_speed_10m']} {units.get('wind_speed_10m', 'km/h')}")
    return ", ".join(parts)


def _daily_lines(daily: dict, units: dict, zh: bool) -> list[str]:
    lines = []
    for i, day in enumerate(daily.get("time", [])):
        value = {key: (series[i] if i < len(series) else None) for key, series in daily.items() if isinstance(series, list)}
        if value.get("temperature_2m_max") is None:
            lines.append(f"{day}: no data yet")
            continue
        t = units.get("temperature_2m_max", "°C")
        lines.append(
            f"{day}: {_describe(value.get('weather_code'), zh)}, {value.get('temperature_2m_min')}–{value['temperature_2m_max']}{t}, "
            f"precipitation {value.get('precipitation_sum')} {units.get('precipitation_sum', 'mm')}, "
            f"max wind {value.get('wind_speed_10m_max')} {units.get('wind_speed_10m_max', 'km/h')}"
        )
    return lines


def _describe(code: Any, zh: bool) -> str:
    names = WMO.get(code) if isinstance(code, int) else None
    return (names[1] if zh else names[0]) if names else f"weather code {code}"


def _yes(flag: str) -> bool:
    return flag.strip().lower() in ("yes", "y", "true", "1", "是")


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)
