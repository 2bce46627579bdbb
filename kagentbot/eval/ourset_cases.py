"""kagentbot's own KAgentBench-format cases, zh and en, over our real tools and argument names.
Each planning case: (id, query, finished tasks as (task_name, tool, args, result), golden answers
as (thought, tool, args)). Reflection cases end on a task that failed or gave too little."""

from __future__ import annotations

PLAN_CASES = [
    ("plan-en-01", "How many days older is Lionel Messi than Antonela Roccuzzo?", [], [
        ("Look up Lionel Messi's date of birth", "encyclopedia", {"query": "Lionel Messi", "lang": "en"}),
        ("Find Messi's birth date in the encyclopedia", "encyclopedia", {"query": "Lionel Messi"}),
        ("Look up Antonela Roccuzzo's date of birth", "encyclopedia", {"query": "Antonela Roccuzzo", "lang": "en"}),
    ]),
    ("plan-en-02", "How many days older is Lionel Messi than Antonela Roccuzzo?", [
        ("Look up Lionel Messi's date of birth", "encyclopedia", {"query": "Lionel Messi"}, "Lionel Messi (born 24 June 1987) is an Argentine footballer."),
    ], [
        ("Look up Antonela Roccuzzo's date of birth", "encyclopedia", {"query": "Antonela Roccuzzo"}),
        ("Find Antonela Roccuzzo's birth date", "encyclopedia", {"query": "Antonela Roccuzzo", "lang": "en"}),
    ]),
    ("plan-en-03", "How many days older is Lionel Messi than Antonela Roccuzzo?", [
        ("Look up Lionel Messi's date of birth", "encyclopedia", {"query": "Lionel Messi"}, "Lionel Messi (born 24 June 1987) is an Argentine footballer."),
        ("Look up Antonela Roccuzzo's date of birth", "encyclopedia", {"query": "Antonela Roccuzzo"}, "Antonela Roccuzzo (born 26 February 1988) is an Argentine model."),
    ], [
        ("Compute the days between 1987-06-24 and 1988-02-26", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}),
        ("Count the days between Messi's and Antonela's birthdays", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}),
    ]),
    ("plan-en-04", "What will the weather be in Berlin this weekend?", [], [
        ("Get the weather forecast for Berlin for the weekend of 2026-11-28 to 2026-11-29", "get_weather_info",
         {"location": "Berlin", "start_date": "2026-11-28", "end_date": "2026-11-29", "is_current": "no"}),
        ("Check Berlin's weather on Saturday and Sunday", "get_weather_info",
         {"location": "Berlin", "start_date": "2026-11-28", "end_date": "2026-11-29"}),
    ]),
    ("plan-en-05", "Is it raining in Paris right now?", [], [
        ("Get the current weather in Paris", "get_weather_info", {"location": "Paris", "is_current": "yes"}),
        ("Check Paris's current conditions", "get_weather_info",
         {"location": "Paris", "start_date": "2026-11-25", "end_date": "2026-11-25", "is_current": "yes"}),
    ]),
    ("plan-en-06", "What weekday is Christmas Day 2026?", [], [
        ("Look up the calendar for 2026-12-25", "get_calendar_info", {"start_date": "2026-12-25", "end_date": "2026-12-25"}),
        ("Find the weekday of December 25, 2026", "get_calendar_info", {"start_date": "2026-12-25", "end_date": "2026-12-25"}),
    ]),
    ("plan-en-07", "When is the winter solstice in 2027?", [], [
        ("Look up the solar terms of 2027 to find the winter solstice", "get_solar_terms_info", {"year": 2027}),
        ("Get the 2027 solar term dates", "get_solar_terms_info", {"year": "2027"}),
    ]),
    ("plan-en-08", "How many days are left until 2027-01-01?", [], [
        ("Compute the days from today 2026-11-25 to 2027-01-01", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}),
        ("Count the days between now and New Year's Day 2027", "time_delta", {"start_time": "2026-11-25 10:00:00", "end_time": "2027-01-01 00:00:00"}),
    ]),
    ("plan-en-09", "What does our onboarding guide say about VPN access?", [], [
        ("Search the knowledge base for VPN access in the onboarding guide", "kb_search", {"query": "onboarding guide VPN access"}),
        ("Find the VPN section of the onboarding guide", "kb_search", {"query": "VPN access"}),
    ]),
    ("plan-en-10", "What is the latest news about the Artemis II launch?", [], [
        ("Search the web for the latest Artemis II launch news", "web_search", {"text": "Artemis II launch latest news"}),
        ("Find recent news on the Artemis II launch date", "web_search", {"text": "Artemis II launch date news"}),
    ]),
    ("plan-en-11", "Summarise the page https://example.org/ski-weekend for the weekend pass price at Nanshan.", [], [
        ("Read the ski weekend page for the Nanshan weekend pass price", "browse_website",
         {"url": "https://example.org/ski-weekend", "question": "Nanshan weekend pass price"}),
        ("Browse the page to find the weekend pass price", "browse_website",
         {"url": "https://example.org/ski-weekend", "question": "weekend pass price"}),
    ]),
    ("plan-en-12", "What time is it in New York now?", [], [
        ("Get the current time in New York", "get_current_time", {"timezone": "America/New_York"}),
        ("Check New York's local time", "get_current_time", {"timezone": "America/New_York"}),
    ]),
    ("plan-en-13", "How old is Lionel Messi today?", [
        ("Look up Lionel Messi's date of birth", "encyclopedia", {"query": "Lionel Messi"}, "Lionel Messi (born 24 June 1987) is an Argentine footballer."),
    ], [
        ("Compute the time from 1987-06-24 to today 2026-11-25", "time_delta", {"start_time": "1987-06-24", "end_time": "2026-11-25"}),
        ("Work out Messi's age from his birth date", "time_delta", {"start_time": "1987-06-24", "end_time": "2026-11-25"}),
    ]),
    ("plan-zh-01", "梅西比安东内拉大多少天？", [], [
        ("查询梅西的出生日期", "encyclopedia", {"query": "梅西", "lang": "zh"}),
        ("在百科中查找利昂内尔·梅西的生日", "encyclopedia", {"query": "利昂内尔·梅西"}),
        ("查询安东内拉·罗库佐的出生日期", "encyclopedia", {"query": "安东内拉·罗库佐", "lang": "zh"}),
    ]),
    ("plan-zh-02", "梅西比安东内拉大多少天？", [
        ("查询梅西的出生日期", "encyclopedia", {"query": "梅西"}, "利昂内尔·梅西（1987年6月24日－），阿根廷足球运动员。"),
        ("查询安东内拉的出生日期", "encyclopedia", {"query": "安东内拉·罗库佐"}, "安东内拉·罗库佐（1988年2月26日－），阿根廷模特。"),
    ], [
        ("计算1987-06-24到1988-02-26相差的天数", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}),
        ("计算梅西和安东内拉生日之间的天数", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}),
    ]),
    ("plan-zh-03", "这个周末北京天气怎么样？", [], [
        ("查询北京本周末2026-11-28到2026-11-29的天气", "get_weather_info",
         {"location": "北京", "start_date": "2026-11-28", "end_date": "2026-11-29", "is_current": "no"}),
        ("获取北京周六和周日的天气预报", "get_weather_info", {"location": "北京", "start_date": "2026-11-28", "end_date": "2026-11-29"}),
    ]),
    ("plan-zh-04", "上海现在冷吗？", [], [
        ("查询上海当前的天气", "get_weather_info", {"location": "上海", "is_current": "yes"}),
        ("获取上海此刻的气温", "get_weather_info", {"location": "上海", "start_date": "2026-11-25", "end_date": "2026-11-25", "is_current": "yes"}),
    ]),
    ("plan-zh-05", "2027年春节是几月几号？", [], [
        ("查询2027年2月上旬的日历以找到春节", "get_calendar_info", {"start_date": "2027-02-01", "end_date": "2027-02-15"}),
        ("查看2027年1月下旬到2月中旬的农历日期", "get_calendar_info", {"start_date": "2027-01-25", "end_date": "2027-02-20"}),
    ]),
    ("plan-zh-06", "2027年冬至是哪一天？", [], [
        ("查询2027年的二十四节气日期", "get_solar_terms_info", {"year": 2027}),
        ("获取2027年节气表找到冬至", "get_solar_terms_info", {"year": "2027"}),
    ]),
    ("plan-zh-07", "今天是农历几月几日？", [], [
        ("查询今天2026-11-25的农历日期", "get_calendar_info", {"start_date": "2026-11-25", "end_date": "2026-11-25"}),
        ("查看2026年11月25日的日历信息", "get_calendar_info", {"start_date": "2026-11-25", "end_date": "2026-11-25"}),
    ]),
    ("plan-zh-08", "距离2027年元旦还有多少天？", [], [
        ("计算今天2026-11-25到2027-01-01的天数", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}),
        ("计算现在到2027年元旦相差的时间", "time_delta", {"start_time": "2026-11-25 10:00:00", "end_time": "2027-01-01 00:00:00"}),
    ]),
    ("plan-zh-09", "我们的报销制度里出差补贴是多少？", [], [
        ("在知识库中搜索报销制度的出差补贴标准", "kb_search", {"query": "报销制度 出差补贴"}),
        ("查找知识库里出差补贴的规定", "kb_search", {"query": "出差补贴"}),
    ]),
    ("plan-zh-10", "最近有什么关于嫦娥七号的新闻？", [], [
        ("在网上搜索嫦娥七号的最新新闻", "web_search", {"text": "嫦娥七号 最新新闻"}),
        ("搜索嫦娥七号发射的最新消息", "web_search", {"text": "嫦娥七号 发射 消息"}),
    ]),
    ("plan-zh-11", "帮我看看 https://example.org/spring-festival 这个页面里正月初一是哪天。", [], [
        ("浏览春节页面查找正月初一的日期", "browse_website", {"url": "https://example.org/spring-festival", "question": "正月初一"}),
        ("阅读该网页中关于正月初一的内容", "browse_website", {"url": "https://example.org/spring-festival", "question": "正月初一是哪天"}),
    ]),
    ("plan-zh-12", "东京现在几点？", [], [
        ("查询东京当前的时间", "get_current_time", {"timezone": "Asia/Tokyo"}),
        ("获取东京时区的当前时间", "get_current_time", {"timezone": "Asia/Tokyo"}),
    ]),
    ("plan-zh-13", "梅西今年多大了？", [
        ("查询梅西的出生日期", "encyclopedia", {"query": "梅西"}, "利昂内尔·梅西（1987年6月24日－），阿根廷足球运动员。"),
    ], [
        ("计算1987-06-24到今天2026-11-25的时间差", "time_delta", {"start_time": "1987-06-24", "end_time": "2026-11-25"}),
        ("根据梅西的生日计算他的年龄", "time_delta", {"start_time": "1987-06-24", "end_time": "2026-11-25"}),
    ]),
]

REFLECTION_CASES = [
    ("refl-en-01", "How many days older is Lionel Messi than Antonela Roccuzzo?", [
        ("Search the web for Messi and Antonela's age gap", "web_search", {"text": "Messi Antonela age difference"},
         "1. Messi and Antonela: their love story — a gossip site. 2. Who is Antonela? — a fan page."),
    ], [
        ("The search gave gossip without dates: look up Lionel Messi's birth date in the encyclopedia instead", "encyclopedia", {"query": "Lionel Messi"}),
        ("Gossip is not a source: find Messi's date of birth in the encyclopedia", "encyclopedia", {"query": "Lionel Messi", "lang": "en"}),
        ("Search the web for Messi and Antonela's age gap", "web_search", {"text": "Messi Antonela age difference"}),
    ]),
    ("refl-en-02", "What was the weather in Beijing on 2025-02-02?", [
        ("Get Beijing's weather forecast", "get_weather_info", {"location": "Beijing", "is_current": "yes"},
         "Beijing now: 3 °C, clear. (current conditions only)"),
    ], [
        ("The current weather does not answer a past date: get Beijing's weather for 2025-02-02", "get_weather_info",
         {"location": "Beijing", "start_date": "2025-02-02", "end_date": "2025-02-02", "is_current": "no"}),
        ("Ask for the archived weather of Beijing on 2025-02-02", "get_weather_info",
         {"location": "Beijing", "start_date": "2025-02-02", "end_date": "2025-02-02"}),
    ]),
    ("refl-en-03", "What weekday is 2026-12-25?", [
        ("Get the calendar for Christmas", "get_calendar_info", {"start_date": "2026-25-12", "end_date": "2026-25-12"},
         "error: start_date must be yyyy-MM-dd, got '2026-25-12'"),
    ], [
        ("The date was malformed: ask the calendar for 2026-12-25 written year first", "get_calendar_info",
         {"start_date": "2026-12-25", "end_date": "2026-12-25"}),
        ("Retry the calendar lookup with the correct date 2026-12-25", "get_calendar_info", {"start_date": "2026-12-25", "end_date": "2026-12-25"}),
    ]),
    ("refl-en-04", "What does our onboarding guide say about VPN access?", [
        ("Search the web for the onboarding guide VPN", "web_search", {"text": "onboarding guide VPN"},
         "1. How to set up a VPN — a generic tutorial. 2. Best VPNs of the year."),
    ], [
        ("Our own guide is not on the web: search the knowledge base for VPN access", "kb_search", {"query": "VPN access onboarding guide"}),
        ("Look in the knowledge base for the onboarding guide's VPN section", "kb_search", {"query": "VPN access"}),
    ]),
    ("refl-en-05", "When is the winter solstice in 2027?", [
        ("Look up the solar terms", "get_solar_terms_info", {"year": 2026}, "2026 solar terms: ... Winter Solstice 2026-12-21 ..."),
    ], [
        ("That was 2026; the question asks for 2027: get the solar terms of 2027", "get_solar_terms_info", {"year": 2027}),
        ("Fetch the 2027 solar terms instead of 2026", "get_solar_terms_info", {"year": 2027}),
    ]),
    ("refl-en-06", "Who is Antonela Roccuzzo?", [
        ("Look up Antonela in the encyclopedia", "encyclopedia", {"query": "Antonela"}, "No article matches 'Antonela'."),
    ], [
        ("The short name found nothing: look up her full name Antonela Roccuzzo", "encyclopedia", {"query": "Antonela Roccuzzo"}),
        ("Search the encyclopedia for the full name Antonela Roccuzzo", "encyclopedia", {"query": "Antonela Roccuzzo", "lang": "en"}),
    ]),
    ("refl-zh-01", "梅西比安东内拉大多少天？", [
        ("在网上搜索梅西和安东内拉的年龄差", "web_search", {"text": "梅西 安东内拉 年龄差"}, "1. 梅西与安东内拉的爱情故事（八卦网站） 2. 安东内拉是谁？（粉丝页面）"),
    ], [
        ("搜索结果只有八卦没有日期，改为在百科中查询梅西的出生日期", "encyclopedia", {"query": "梅西"}),
        ("八卦不可靠，去百科查梅西的生日", "encyclopedia", {"query": "利昂内尔·梅西", "lang": "zh"}),
        ("在网上搜索梅西和安东内拉的年龄差", "web_search", {"text": "梅西 安东内拉 年龄差"}),
    ]),
    ("refl-zh-02", "2025年2月2日北京天气怎么样？", [
        ("查询北京的天气", "get_weather_info", {"location": "北京", "is_current": "yes"}, "北京当前：3 °C，晴。（仅当前天气）"),
    ], [
        ("当前天气不能回答过去的日期，改查北京2025-02-02的天气", "get_weather_info",
         {"location": "北京", "start_date": "2025-02-02", "end_date": "2025-02-02", "is_current": "no"}),
        ("查询北京2025年2月2日的历史天气", "get_weather_info", {"location": "北京", "start_date": "2025-02-02", "end_date": "2025-02-02"}),
    ]),
    ("refl-zh-03", "2027年春节是几月几号？", [
        ("查询2027年1月的日历", "get_calendar_info", {"start_date": "2027-01-01", "end_date": "2027-01-31"}, "2027年1月：没有春节（农历腊月）"),
    ], [
        ("1月没有春节，继续查询2027年2月的日历", "get_calendar_info", {"start_date": "2027-02-01", "end_date": "2027-02-28"}),
        ("春节应在2月，查看2027年2月上旬的日历", "get_calendar_info", {"start_date": "2027-02-01", "end_date": "2027-02-15"}),
    ]),
    ("refl-zh-04", "我们的报销制度里出差补贴是多少？", [
        ("在网上搜索报销制度出差补贴", "web_search", {"text": "报销制度 出差补贴"}, "1. 某公司差旅费管理办法（与本公司无关） 2. 出差补贴标准一览"),
    ], [
        ("网上的是别家公司的制度，改在知识库中搜索我们的报销制度", "kb_search", {"query": "报销制度 出差补贴"}),
        ("在知识库里查找出差补贴的规定", "kb_search", {"query": "出差补贴标准"}),
    ]),
    ("refl-zh-05", "2027年冬至是哪一天？", [
        ("查询节气", "get_solar_terms_info", {"year": 2026}, "2026年节气：……冬至 2026-12-21……"),
    ], [
        ("查到的是2026年，问题问的是2027年，改查2027年的节气", "get_solar_terms_info", {"year": 2027}),
        ("获取2027年的二十四节气", "get_solar_terms_info", {"year": 2027}),
    ]),
    ("refl-zh-06", "距离2027年元旦还有多少天？", [
        ("计算时间差", "time_delta", {"start_time": "2027-01-01", "end_time": "2026-11-25"}, "error: end_time is before start_time"),
    ], [
        ("起止时间写反了，改为从2026-11-25算到2027-01-01", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}),
        ("交换起止日期重新计算天数", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}),
    ]),
]

CONCLUSION_CASES = [
    ("concl-en-01", "How many days older is Lionel Messi than Antonela Roccuzzo?", [
        ("Look up Lionel Messi's date of birth", "encyclopedia", {"query": "Lionel Messi"}, "Lionel Messi (born 24 June 1987) is an Argentine footballer."),
        ("Look up Antonela Roccuzzo's date of birth", "encyclopedia", {"query": "Antonela Roccuzzo"}, "Antonela Roccuzzo (born 26 February 1988) is an Argentine model."),
        ("Days between the birthdays", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}, "247 days (0 years, 8 months, 2 days)"),
    ], ["Messi was born on 24 June 1987 and Antonela Roccuzzo on 26 February 1988, so Messi is 247 days older.",
        "Lionel Messi is 247 days older than Antonela Roccuzzo (1987-06-24 vs 1988-02-26)."]),
    ("concl-en-02", "What was the weather in Beijing on 2025-02-02?", [
        ("Beijing weather on 2025-02-02", "get_weather_info", {"location": "Beijing", "start_date": "2025-02-02", "end_date": "2025-02-02"},
         "Beijing 2025-02-02: clear, low -7 °C, high 4 °C, no precipitation."),
    ], ["On 2 February 2025 Beijing was clear, with a low of -7 °C and a high of 4 °C and no rain or snow.",
        "It was a clear, dry day in Beijing on 2025-02-02: between -7 °C and 4 °C."]),
    ("concl-en-03", "What weekday is Christmas Day 2026?", [
        ("Calendar for 2026-12-25", "get_calendar_info", {"start_date": "2026-12-25", "end_date": "2026-12-25"}, "2026-12-25: Friday; lunar 十一月十七; Christmas Day"),
    ], ["Christmas Day 2026 (25 December) falls on a Friday.", "25 December 2026 is a Friday."]),
    ("concl-en-04", "When is the winter solstice in 2027?", [
        ("Solar terms of 2027", "get_solar_terms_info", {"year": 2027}, "2027: ... Major Snow 2027-12-07, Winter Solstice 2027-12-22, Minor Cold 2028-01-05 ..."),
    ], ["The winter solstice in 2027 falls on 22 December 2027.", "In 2027 the winter solstice is on December 22."]),
    ("concl-en-05", "What does our onboarding guide say about VPN access?", [
        ("Knowledge base: VPN access", "kb_search", {"query": "VPN access"},
         "[1] (onboarding.md) New staff request VPN access through the IT portal on their first day; access is granted within 24 hours and needs two-factor authentication."),
    ], ["According to the onboarding guide, you request VPN access through the IT portal on your first day; it is granted within 24 hours and requires two-factor authentication.",
        "Request VPN access in the IT portal on day one: it takes up to 24 hours and needs two-factor authentication."]),
    ("concl-en-06", "How many days are left until 2027-01-01?", [
        ("Days until New Year", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}, "37 days (0 years, 1 month, 7 days)"),
    ], ["There are 37 days left until 1 January 2027.", "37 days remain until New Year's Day 2027."]),
    ("concl-zh-01", "梅西比安东内拉大多少天？", [
        ("查询梅西的出生日期", "encyclopedia", {"query": "梅西"}, "利昂内尔·梅西（1987年6月24日－），阿根廷足球运动员。"),
        ("查询安东内拉的出生日期", "encyclopedia", {"query": "安东内拉·罗库佐"}, "安东内拉·罗库佐（1988年2月26日－），阿根廷模特。"),
        ("计算天数", "time_delta", {"start_time": "1987-06-24", "end_time": "1988-02-26"}, "247天（0年8个月2天）"),
    ], ["梅西出生于1987年6月24日，安东内拉出生于1988年2月26日，梅西比安东内拉大247天。",
        "梅西比安东内拉大247天。"]),
    ("concl-zh-02", "2025年2月2日北京天气怎么样？", [
        ("查询北京2025-02-02的天气", "get_weather_info", {"location": "北京", "start_date": "2025-02-02", "end_date": "2025-02-02"},
         "北京 2025-02-02：晴，最低 -7 °C，最高 4 °C，无降水。"),
    ], ["2025年2月2日北京天气晴，最低气温-7°C，最高气温4°C，没有降水。", "那天北京是晴天，气温在-7°C到4°C之间。"]),
    ("concl-zh-03", "2027年春节是几月几号？", [
        ("查询2027年2月上旬日历", "get_calendar_info", {"start_date": "2027-02-01", "end_date": "2027-02-15"},
         "2027-02-06：星期六，农历正月初一，春节"),
    ], ["2027年春节（农历正月初一）是2月6日，星期六。", "2027年的春节在2月6日。"]),
    ("concl-zh-04", "2027年冬至是哪一天？", [
        ("查询2027年节气", "get_solar_terms_info", {"year": 2027}, "2027年：……大雪 2027-12-07，冬至 2027-12-22，小寒 2028-01-05……"),
    ], ["2027年的冬至是12月22日。", "2027年冬至在2027年12月22日。"]),
    ("concl-zh-05", "我们的报销制度里出差补贴是多少？", [
        ("知识库：出差补贴", "kb_search", {"query": "出差补贴"}, "[1]（报销制度.md）国内出差每人每天补贴150元，境外出差每天补贴50美元，凭行程单报销。"),
    ], ["根据报销制度，国内出差每人每天补贴150元，境外出差每天补贴50美元，需凭行程单报销。",
        "出差补贴：国内每天150元，境外每天50美元。"]),
    ("concl-zh-06", "距离2027年元旦还有多少天？", [
        ("计算天数", "time_delta", {"start_time": "2026-11-25", "end_time": "2027-01-01"}, "37天（0年1个月7天）"),
    ], ["距离2027年元旦还有37天。", "还有37天就到2027年元旦了。"]),
]

# (id, persona (display_name, bio, instructions), question, golden answers)
PROFILE_CASES = [
    ("prof-en-01", ("Captain Byte", "a pirate who loves computers", "Always talk like a pirate."), "How do I restart my router?",
     ["Arr, matey! Unplug yer router, wait thirty seconds, then plug it back in and let her lights settle.",
      "Ahoy! Pull the power from the router, count to thirty, and plug it in again, arr!"]),
    ("prof-en-02", ("Coach Sam", "a friendly running coach", "Encourage the user and give one concrete tip."), "I want to run my first 5 km.",
     ["Great goal! Start with three easy run-walk sessions a week and add a little running each week; you'll get there.",
      "You can do it! Try alternating one minute of running with one minute of walking, three times a week."]),
    ("prof-en-03", ("Dr. Terse", "a doctor of few words", "Answer in one short sentence."), "Is it bad to skip breakfast?",
     ["Not for most healthy adults, if you eat well later.", "Usually not, if the rest of your meals are balanced."]),
    ("prof-en-04", ("Shakespeare Bot", "a bard", "Answer in the style of Shakespeare."), "What is the weather like today?",
     ["Alas, I know not the heavens' mood this day; pray, tell me where thou art and I shall look.",
      "Forsooth, the sky's temper is hid from me; name thy town and I shall seek it out."]),
    ("prof-en-05", ("Helpdesk", "the company's IT helpdesk", "Be polite and always end with a ticket reminder."), "My laptop will not turn on.",
     ["Sorry to hear that. Please hold the power button for ten seconds and try charging it. If it still fails, please open a ticket.",
      "Please try a different charger and a long press of the power button. If that does not help, kindly open a helpdesk ticket."]),
    ("prof-en-06", ("Chef Lina", "an Italian chef", "Recommend a dish in every answer."), "What should I cook tonight?",
     ["Try a simple spaghetti aglio e olio: garlic, olive oil, chilli and parsley, ready in 15 minutes.",
      "How about risotto with mushrooms? It is comforting and easy with a little patience."]),
    ("prof-zh-01", ("小助手", "一位耐心的客服", "每次回答都以“您好”开头。"), "我的快递怎么还没到？",
     ["您好，很抱歉让您久等了。请提供您的订单号，我帮您查询快递的物流状态。",
      "您好，请您把快递单号发给我，我马上为您查询物流进度。"]),
    ("prof-zh-02", ("李白", "唐代诗人", "用古诗的风格回答。"), "今天心情不好怎么办？",
     ["人生得意须尽欢，莫使金樽空对月。且放愁心随风去，明朝散发弄扁舟。",
      "抽刀断水水更流，举杯消愁愁更愁。不如登高望远山，清风明月慰君心。"]),
    ("prof-zh-03", ("健身教练阿强", "一位热情的健身教练", "回答要积极鼓励，并给出一条具体建议。"), "我想减肥，从哪里开始？",
     ["加油，你一定能做到！先从每天快走30分钟开始，同时少喝含糖饮料。",
      "很棒的决定！建议每周运动三次，每次30分钟，并控制晚餐的主食量。"]),
    ("prof-zh-04", ("简答先生", "说话简洁的人", "只用一句话回答。"), "喝咖啡对身体好吗？",
     ["适量饮用对大多数人无害。", "每天一两杯一般没问题。"]),
    ("prof-zh-05", ("历史老师王老师", "一位中学历史老师", "回答时联系历史知识。"), "为什么春节要贴春联？",
     ["春联起源于古代的桃符，人们在门上挂桃木驱邪，五代时开始写上对联，后来演变成春节贴春联的习俗。",
      "贴春联源自桃符，宋代以后逐渐普及，寓意辞旧迎新、祈求吉祥。"]),
    ("prof-zh-06", ("程序员小张", "一名后端工程师", "用程序员的口吻回答，可以带一点幽默。"), "周末去哪里玩？",
     ["周末当然是先把bug修完再说！开个玩笑，可以去公园散散步，给大脑做一次垃圾回收。",
      "建议执行 weekend.relax()：去郊外爬山，远离键盘，重启一下自己。"]),
]
