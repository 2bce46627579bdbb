"""KAgentSys' time-aware tools that need no network: date arithmetic, calendar (weekday,
lunar date, holidays), solar terms, and the current time."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kagentbot.tools.registry import ToolContext, ToolError, ToolOutput, tool

MAX_CALENDAR_DAYS = 62
# weekday names by language, Monday first (date.weekday()); the one copy for tools and prompts
WEEKDAYS = {"en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
            "zh": ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]}
SOLAR_TERMS = [  # Chinese name, pinyin key used by lunar-python's table, English name
    ("小寒", "XIAO_HAN", "Minor Cold"), ("大寒", "DA_HAN", "Major Cold"),
    ("立春", "LI_CHUN", "Start of Spring"), ("雨水", "YU_SHUI", "Rain Water"),
    ("惊蛰", "JING_ZHE", "Awakening of Insects"), ("春分", "CHUN_FEN", "Spring Equinox"),
    ("清明", "QING_MING", "Pure Brightness"), ("谷雨", "GU_YU", "Grain Rain"),
    ("立夏", "LI_XIA", "Start of Summer"), ("小满", "XIAO_MAN", "Grain Buds"),
    ("芒种", "MANG_ZHONG", "Grain in Ear"), ("夏至", "XIA_ZHI", "Summer Solstice"),
    ("小暑", "XIAO_SHU", "Minor Heat"), ("大暑", "DA_SHU", "Major Heat"),
    ("立秋", "LI_QIU", "Start of Autumn"), ("处暑", "CHU_SHU", "End of Heat"),
    ("白露", "BAI_LU", "White Dew"), ("秋分", "QIU_FEN", "Autumn Equinox"),
    ("寒露", "HAN_LU", "Cold Dew"), ("霜降", "SHUANG_JIANG", "Frost's Descent"),
    ("立冬", "LI_DONG", "Start of Winter"), ("小雪", "XIAO_XUE", "Minor Snow"),
    ("大雪", "DA_XUE", "Major Snow"), ("冬至", "DONG_ZHI", "Winter Solstice"),
]
_TERM_BY_KEY = {key: (zh, en) for zh, key, en in SOLAR_TERMS} | {zh: (zh, en) for zh, _, en in SOLAR_TERMS}


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise ToolError(f"{field} must be a date like 2026-02-17, got {text!r}") from None


def parse_moment(text: str, field: str) -> datetime:
    cleaned = text.strip().replace("T", " ")
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(cleaned, pattern)
        except ValueError:
            continue
    raise ToolError(f"{field} must look like 1987-06-24 or 1987-06-24 08:30:00, got {text!r}")


def calendar_span(start: date, end: date) -> tuple[int, int, int]:
    """Whole years, months and days from start to end (start <= end)."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if end.day < start.day:
        months -= 1
    years, months = divmod(months, 12)
    anchor_month = start.month + months + years * 12
    anchor_year, anchor_month = start.year + (anchor_month - 1) // 12, (anchor_month - 1) % 12 + 1
    anchor_day = min(start.day, _days_in_month(anchor_year, anchor_month))
    return years, months, (end - date(anchor_year, anchor_month, anchor_day)).days


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


@tool
async def time_delta(start_time: str, end_time: str) -> dict:
    """Compute the time between two moments, e.g. someone's age or how many days apart two dates are.

    Args:
        start_time: the earlier moment, a date such as "1987-06-24" or a date and time such as "2025-03-01 08:30:00"
        end_time: the later moment, e.g. "2026-01-15" or "2026-01-15 17:45:00"
    """
    start, end = parse_moment(start_time, "start_time"), parse_moment(end_time, "end_time")
    sign = 1
    if end < start:
        start, end, sign = end, start, -1
    delta = end - start
    years, months, days = calendar_span(start.date(), end.date())
    result = {
        "start_time": start_time, "end_time": end_time,
        "total_days": sign * delta.days,
        "span": f"{years} years {months} months {days} days",
        "direction": "end is after start" if sign > 0 else "end is before start",
    }
    if delta.seconds:
        result["extra_hours"] = round(delta.seconds / 3600, 2)
        result["total_hours"] = round(sign * delta.total_seconds() / 3600, 2)
    return result


@tool
async def get_calendar_info(start_date: str, end_date: str, country: str = "CN") -> ToolOutput:
    """Calendar facts for each day in a range: weekday, Chinese lunar date, traditional festivals and public holidays (with make-up work days).

    Args:
        start_date: first day, e.g. 2026-02-01
        end_date: last day, e.g. 2026-02-28 (at most 62 days after start_date)
        country: ISO country code whose public holidays to include, e.g. CN, US, GB
    """
    start, end = parse_day(start_date, "start_date"), parse_day(end_date, "end_date")
    if end < start:
        start, end = end, start
    if (end - start).days >= MAX_CALENDAR_DAYS:
        raise ToolError(f"ask for at most {MAX_CALENDAR_DAYS} days at a time")
    public = _public_holidays(country, start.year, end.year)
    rows = [_day_facts(start + timedelta(days=i), public) for i in range((end - start).days + 1)]
    lines = [" ".join(part for part in row if part) for row in rows]
    return ToolOutput(text="\n".join(lines), display="\n".join(lines[:7]) + ("\n…" if len(lines) > 7 else ""))


def _public_holidays(country: str, first_year: int, last_year: int) -> dict[date, str]:
    import holidays

    code = country.strip().upper() or "CN"
    try:
        return dict(holidays.country_holidays(code, years=range(first_year, last_year + 1)))
    except NotImplementedError:
        raise ToolError(f"no holiday data for country {country!r}; use an ISO code such as CN, US, GB") from None


def _day_facts(day: date, public: dict[date, str]) -> list[str]:
    from lunar_python import Solar
    from lunar_python.util import HolidayUtil

    solar = Solar.fromYmd(day.year, day.month, day.day)
    lunar = solar.getLunar()
    lunar_text = f"农历{lunar.getYearInGanZhi()}({lunar.getYearShengXiao()})年{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"
    festivals = lunar.getFestivals() + solar.getFestivals()
    term = lunar.getJieQi()
    official = HolidayUtil.getHoliday(day.year, day.month, day.day)
    parts = [day.isoformat(), f"{WEEKDAYS['en'][day.weekday()]}/{WEEKDAYS['zh'][day.weekday()]}", lunar_text]
    if festivals:
        parts.append("festival: " + "、".join(festivals))
    if term:
        parts.append(f"solar term: {term} ({_TERM_BY_KEY.get(term, (term, ''))[1]})")
    if official:
        kind = "make-up work day for" if official.isWork() else "day off for"
        parts.append(f"CN official {kind} {official.getName()}")
    if day in public:
        parts.append(f"public holiday: {public[day]}")
    return parts


@tool
async def get_solar_terms_info(year: int) -> ToolOutput:
    """The dates of the 24 Chinese solar terms (节气) in a Gregorian year.

    Args:
        year: the year, e.g. 2027
    """
    if not 1901 <= year <= 2099:
        raise ToolError("year must be between 1901 and 2099")
    terms = solar_terms(year)
    lines = [f"{day.isoformat()} {zh} ({en})" for day, zh, en in terms]
    return ToolOutput(text=f"Solar terms of {year}:\n" + "\n".join(lines), display="\n".join(lines[:6]) + "\n…")


def solar_terms(year: int) -> list[tuple[date, str, str]]:
    from lunar_python import Lunar

    found: dict[str, date] = {}
    for lunar_year in (year - 1, year, year + 1):
        for key, solar in Lunar.fromYmd(lunar_year, 1, 1).getJieQiTable().items():
            zh, en = _TERM_BY_KEY[key]
            day = date(solar.getYear(), solar.getMonth(), solar.getDay())
            if day.year == year:
                found[zh] = day
    return sorted(((day, zh, _TERM_BY_KEY[zh][1]) for zh, day in found.items()), key=lambda item: item[0])


@tool
async def get_current_time(context: ToolContext, timezone: str = "") -> str:
    """The current date, time and weekday, optionally in another time zone.

    Args:
        timezone: an IANA time zone such as Asia/Shanghai or America/New_York; empty for the bot's own
    """
    now = context.now
    if timezone:
        try:
            now = now.astimezone(ZoneInfo(timezone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ToolError(f"unknown time zone {timezone!r}; use a name like Asia/Shanghai") from None
    return f"{now:%Y-%m-%d %H:%M:%S} {now.tzname() or ''} ({WEEKDAYS['en'][now.weekday()]})".strip()


TIME_TOOLS = (time_delta, get_calendar_info, get_solar_terms_info, get_current_time)
