"""kagentbot's one settings object: `kagentbot.toml` (or --config FILE) overlaid by the
environment (`KAGENTBOT_` prefix, `__` for nesting). Built once at start and passed down."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
CONFIG_FILE_NAME = "kagentbot.toml"


class SettingsError(Exception):
    """Settings could not be loaded; the message names the key and the fix."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Section(BaseModel):
    """A settings section: an unknown key is a typo, refused at start rather than ignored."""

    model_config = ConfigDict(extra="forbid")


class LLMSettings(Section):
    backend: Literal["ollama", "openai"] = "ollama"
    host: str = ""  # empty: OLLAMA_HOST, else DEFAULT_OLLAMA_HOST (filled in by Settings)
    model: str = "kagentlm"
    mode: Literal["kagent", "native"] = "kagent"
    api_key: SecretStr | None = None  # openai backend only
    # KAgentLM's recommended sampling (reference/KAGENTSYS.md)
    temperature: float = Field(0.1, ge=0, le=2)
    top_p: float = Field(0.75, gt=0, le=1)
    top_k: int = Field(40, ge=1)
    num_ctx: int = Field(8192, ge=512)
    # output caps, so a model stuck repeating itself ends instead of running to the timeout
    # (generous: a reasoning model's thinking, qwen3 or deepseek-r1, counts toward both)
    # a plan is 40-80 tokens of JSON; a model echoing its prompt stops here instead of running for
    # minutes on a CPU (a reasoning model that thinks before planning may need more)
    plan_max_tokens: int = Field(384, ge=32, description="most tokens one planning reply may have")
    answer_max_tokens: int = Field(4096, ge=32, description="most tokens one answer may have")
    keep_alive: str = "10m"
    timeout: float = Field(120.0, gt=0, description="seconds for each read from the LLM server (llm.call_deadline bounds a whole call)")
    connect_timeout: float = Field(5.0, gt=0)
    max_connections: int = Field(32, ge=1, description="requests in flight to the LLM server at once; more wait their turn")
    # llm.timeout bounds each read, so a server sending a token every few seconds never trips it
    call_deadline: float = Field(300.0, gt=0, description="seconds one LLM call may take in all, however steadily it streams")
    # ask the server for JSON matching the plan's schema (Ollama `format`, OpenAI-compatible
    # `response_format` json_schema: vLLM, llama.cpp); a server that refuses gets free text once and after
    constrained_planning: bool = Field(True, description="schema-constrained planning replies where the server supports them")

    @field_validator("host")
    @classmethod
    def _host_has_scheme(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            value = "http://" + value
        return value.rstrip("/")


class AgentSettings(Section):
    max_steps: int = Field(5, ge=1, le=20)
    tool_timeout: float = Field(30.0, gt=0)
    history_turns: int = Field(4, ge=0, le=50)
    prompt_budget_tokens: int = Field(6000, ge=512, description="prompt size limit for every request, in both modes")
    tool_output_chars: int = Field(3000, ge=200)
    turn_deadline: float = Field(600.0, gt=0, description="seconds one turn may take in all: planning, tools and the answer")
    # where the server reports the model's context (llama.cpp n_ctx, vLLM max_model_len, Ollama's
    # show capped by llm.num_ctx), each request's budget is at most this share of it less the output cap
    context_share: float = Field(0.9, gt=0, le=1, description="most of the server's known context a prompt may fill")


class EmbedSettings(Section):
    backend: Literal["builtin", "ollama"] = "builtin"
    model: str = ""  # ollama backend: e.g. bge-m3, nomic-embed-text
    batch_size: int = Field(64, ge=1)
    # builtin backend: "pooled" (token features looked up and summed, ~6x faster to ingest) or
    # "full" (the whole forward pass). A store built with one needs `kb reindex` for the other.
    builtin_model: Literal["pooled", "full"] = "pooled"
    # builtin backend: embed only each text's first N characters (0: all). The forward pass is
    # linear in length, so this bounds ingestion cost; full-text search still sees whole chunks.
    window_chars: int = Field(0, ge=0)
    # builtin pooled model: keep an uncompressed copy of the weights (~77 MB) in
    # <data_dir>/models, memory-mapped at start instead of inflating the wheel's (~0.5 s each start).
    weights_cache: bool = True
    weights_dir: Path | None = None  # where that copy goes; None: <data_dir>/models


class MemorySettings(Section):
    uri: str = ""  # empty: <data_dir>/lancedb; s3://bucket/prefix (or gs://, az://) for scale-out
    # object store options for such a uri, as LanceDB names them: aws_endpoint, aws_region,
    # allow_http, aws_access_key_id, aws_secret_access_key, timeout... (empty: the AWS environment)
    storage_options: dict[str, SecretStr] = Field(default_factory=dict)
    top_k: int = Field(4, ge=1, le=50)
    max_upload_mb: float = Field(20.0, gt=0)
    max_pages: int = Field(500, ge=1)
    max_chunks_per_document: int = Field(5000, ge=1)
    chunk_chars: int = Field(800, ge=100)
    chunk_overlap: int = Field(120, ge=0)
    conversation_retention_days: int = Field(90, ge=1)
    task_retention_days: int = Field(180, ge=1)
    fetch_timeout: float = Field(30.0, gt=0, description="seconds to fetch a URL for `kb add`")
    ann_min_rows: int = Field(10_000, ge=256, description="build the vector ANN index from this many chunks")
    # Full-text tokenizer. icu: word segmentation (dictionary-based for Chinese), fast at scale;
    # ngram: 2-3 character n-grams, matches any substring (e.g. 熊猫 inside 大熊猫) but is slower.
    fts_tokenizer: Literal["icu", "ngram"] = "icu"
    task_min_similarity: float = Field(0.4, ge=-1, le=1, description="earlier tasks recalled above this cosine")
    compact_every: int = Field(16, ge=1, description="compact the turn and task tables after this many background commits (each a batch of turns)")
    # Untrusted files: PDF, Word and HTML are parsed in a child process with these budgets (0 CPU
    # seconds: in the bot's own process, unlimited); zip-based files (.docx) are checked first.
    parse_cpu_seconds: float = Field(20.0, ge=0, description="CPU seconds one document's parsing may use")
    parse_memory_mb: int = Field(1024, ge=128, description="memory (address space, MB) one document's parsing may use")
    archive_max_members: int = Field(1000, ge=1, description="most files inside a .docx")
    archive_max_unpacked_mb: float = Field(100.0, gt=0, description="most MB a .docx may unpack to")
    archive_max_ratio: int = Field(100, ge=2, description="highest compression ratio of one part of a .docx (larger than 1 MB unpacked)")
    keep_versions_minutes: float = Field(
        2.0, gt=0, description="compacting the turn and task tables removes their versions older than this "
        "(each costs every later compaction time; other processes read the newest within 2 s)")
    write_interval: float = Field(
        0.5, ge=0, description="seconds between background commits of finished turns under a steady flow "
        "(a lone turn is written at once); what a crash can lose grows with it")


class ToolsSettings(Section):
    enabled: CsvList = Field(default_factory=list)  # empty: every registered tool
    custom: CsvList = Field(default_factory=list)  # module paths of user tools
    search_backend: Literal["ddgs", "searxng"] = "ddgs"
    searxng_url: str = ""
    wikipedia_url: str = "https://{lang}.wikipedia.org"
    open_meteo_url: str = "https://api.open-meteo.com"
    open_meteo_archive_url: str = "https://archive-api.open-meteo.com"
    geocoding_url: str = "https://geocoding-api.open-meteo.com"
    browse_allowlist: CsvList = Field(default_factory=list)  # hosts/CIDRs let past the SSRF guard
    browse_max_bytes: int = Field(2_000_000, ge=1000)
    browse_max_redirects: int = Field(5, ge=0)
    browse_timeout: float = Field(20.0, gt=0, description="seconds for a whole page fetch, redirects included")
    browse_passages: int = Field(4, ge=1, le=20, description="passages returned when a question is given")
    user_agent: str = "kagentbot/0.1 (+https://github.com/kagentbot/kagentbot)"
    http_timeout: float = Field(15.0, gt=0, description="seconds for one call to a search, encyclopedia or weather API")
    search_max_results: int = Field(5, ge=1, le=20)
    search_retries: int = Field(2, ge=0, le=5)
    search_backoff: float = Field(1.0, ge=0, description="seconds before the first retry; doubles each time")
    search_timeout: float = Field(25.0, gt=0, description="seconds for a whole search, retries included")
    search_proxy: str = ""  # proxy for the ddgs backend, e.g. socks5h://127.0.0.1:9150
    output_chars: int = Field(2800, ge=200, description="budget for one tool's text before the agent's own cut")
    # No exfiltration by tool: browse_website opens only URLs that appeared in the asker's message,
    # in search results or in documents and pages read this turn, or any URL on these hosts
    # ("docs.python.org", "*.example.org"). browse_any_url lifts the rule (not recommended).
    browse_hosts: CsvList = Field(default_factory=list)
    browse_any_url: bool = False

    _split = field_validator("enabled", "custom", "browse_allowlist", mode="before")(
        classmethod(lambda cls, v: _split_csv(v))
    )
    _split_hosts = field_validator("browse_hosts", mode="before")(classmethod(lambda cls, v: _split_csv(v)))


class RenderSettings(Section):
    # debug: as thread, plus the raw text of a plan the bot could not use
    verbosity: Literal["thread", "summary", "off", "debug"] = "thread"
    broadcast_answer: bool = False


class SlackSettings(Section):
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"  # Web API base: GovSlack (https://slack-gov.com/api/), tests
    mode: Literal["socket", "http"] = "socket"
    listen: str = "0.0.0.0"  # HTTP mode: address the events server binds
    port: int = Field(3000, ge=1, le=65535)  # HTTP mode: Slack posts to https://HOST/slack/events
    connect_timeout: float = Field(30.0, gt=0, description="Socket Mode: seconds to open the WebSocket at start")
    send_interval: float = Field(1.0, ge=0, description="seconds between messages to one channel")
    edit_interval: float = Field(1.0, ge=0, description="seconds between edits of one message")

    @field_validator("api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") + "/"  # slack_sdk joins the method name straight on


class TelegramSettings(Section):
    token: SecretStr | None = None
    base_url: str = "https://api.telegram.org/bot"  # a local Bot API server: http://HOST:8081/bot
    base_file_url: str = ""  # empty: base_url with /bot → /file/bot
    local_mode: bool = False  # the local Bot API server runs with --local (no 20 MB download cap)
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""  # public https URL Telegram posts updates to; its path is served locally
    webhook_secret: SecretStr | None = None  # checked against X-Telegram-Bot-Api-Secret-Token
    listen: str = "0.0.0.0"  # webhook mode: address the local server binds
    port: int = Field(8443, ge=1, le=65535)
    send_interval: float = Field(1.0, ge=0, description="seconds between messages to one chat")
    edit_interval: float = Field(1.0, ge=0, description="seconds between edits of one message")

    @field_validator("base_url", "base_file_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class DiscordSettings(Section):
    token: SecretStr | None = None
    # Discord allows about 5 messages per 5 s per channel, edits included
    send_interval: float = Field(1.0, ge=0, description="seconds between messages to one channel")
    edit_interval: float = Field(1.0, ge=0, description="seconds between edits of one message")
    thread_archive_minutes: Literal[60, 1440, 4320, 10080] = 1440
    ephemeral_commands: bool = True  # slash command replies only the invoker sees
    # Replicas split the gateway's shards (docs/scaling.md): e.g. 3 replicas with shard_count 3
    # run shard_ids 0, 1 and 2. Discord sends direct messages to shard 0 only.
    shard_count: int | None = Field(None, ge=1, description="shards of the bot across every replica (unset: one unsharded connection)")
    shard_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list, description="the shards this replica runs, e.g. 0,1 (empty: all of shard_count)")

    _split_shards = field_validator("shard_ids", mode="before")(classmethod(lambda cls, v: _split_csv(v)))

    @field_validator("shard_ids")
    @classmethod
    def _shards_in_range(cls, ids: list[int], info: ValidationInfo) -> list[int]:
        count = info.data.get("shard_count")
        if ids and count is None:
            raise ValueError("set discord.shard_count too (the shards of every replica together)")
        wrong = sorted({i for i in ids if not 0 <= i < (count or 0)})
        if wrong:
            raise ValueError(f"shards {wrong} are outside 0..{(count or 1) - 1} (discord.shard_count)")
        if len(set(ids)) != len(ids):
            raise ValueError("a shard is named twice")
        return ids


class SchedulerSettings(Section):
    timezone: str = "UTC"
    max_jobs_per_user: int = Field(10, ge=1)
    min_interval_minutes: int = Field(15, ge=1)
    misfire_grace_seconds: int = Field(3600, ge=1)
    reload_seconds: int = Field(30, ge=1, description="how often a running bot picks up `kagentbot schedule` changes")


class PersonaSettings(Section):
    default: str = "assistant"


class LimitsSettings(Section):
    """Fair shares under load: what one user or one chat may take of a shared bot."""

    user_turns: int = Field(4, ge=1, description="turns one user has running at once; more wait in line")
    user_queued: int = Field(50, ge=0, description="turns one user may have waiting; past it, a 'slow down' reply")
    user_commands: int = Field(2, ge=1, description="commands one user has running at once; more wait in line")
    user_commands_queued: int = Field(10, ge=0, description="commands one user may have waiting; past it, a 'slow down' reply")
    chat_share: float = Field(0.75, gt=0, le=1, description="most of the LLM slots one chat holds while other chats wait")
    queue_notice_after: float = Field(2.0, ge=0, description="seconds a turn waits for an LLM slot before the user is shown where it stands")
    slow_down_every: float = Field(30.0, ge=0, description="seconds between two 'slow down' replies to one user")
    scheduled_patience: float = Field(30.0, gt=0, description="seconds a scheduled question's model call waits behind interactive ones at most")
    queue_notice_every: float = Field(5.0, gt=0, description="seconds between updates of one queue notice (each is an edit)")
    preparing: int = Field(0, ge=0, description="turns getting ready for their first model call at once (persona, memory recall, "
                                                "prompt), taken fairly by user; 0: four per LLM slot (llm.max_connections)")


class OpsSettings(Section):
    """The operations endpoint: /healthz, /readyz and /metrics for supervisors and Prometheus."""

    port: int | None = Field(None, ge=1, le=65535, description="serve the endpoints on this port (unset: off)")
    listen: str = "127.0.0.1"  # a container sets 0.0.0.0 so that Prometheus can reach it
    metrics: bool = True  # count turns, LLM calls, tools and messages for /metrics
    check_timeout: float = Field(3.0, gt=0, description="seconds each readiness check may take")
    max_loop_lag: float = Field(5.0, gt=0, description="seconds the event loop may fall behind before /healthz fails")
    store_refresh: float = Field(30.0, ge=0, description="seconds the knowledge-base counts in /metrics are reused")


class LogSettings(Section):
    format: Literal["text", "json"] = "text"  # json: one object a line, with the turn's id, platform and timing


class EvalSettings(Section):
    """`kagentbot eval`: KAgentLM's sampling and KwaiAgents' input budget, and how many cases at once."""

    temperature: float = Field(0.1, ge=0, le=2)
    top_p: float = Field(0.75, gt=0, le=1)
    top_k: int = Field(40, ge=1)
    max_input_tokens: int = Field(6000, ge=256, description="longer prompts are cut in the middle of their memory, else of the prompt")
    max_output_tokens: int = Field(1024, ge=16, description="most tokens one benchmark reply may have")
    concurrency: int = Field(4, ge=1, le=256, description="cases sent to the model at once")


class ClusterSettings(Section):
    """Several identical replicas on shared state (docs/scaling.md). Off: one process keeps every
    queue, lock and counter in itself, exactly as a single bot does."""

    enabled: bool = False
    redis_url: SecretStr = Field(SecretStr("redis://127.0.0.1:6379/0"),
                                 description="redis:// or rediss:// URL of the shared Redis (a password goes in it)")
    key_prefix: str = Field("kagentbot", min_length=1, description="every key this bot writes in Redis starts with this and a colon")
    replica_id: str = ""  # empty: host name and process id; names this replica in leases and logs
    lease_seconds: float = Field(15.0, gt=1, description="a conversation's or the leader's lease; a dead replica's work moves on after it")
    dedupe_hours: float = Field(24.0, gt=0, description="how long a platform event id is remembered against redelivery")
    connect_timeout: float = Field(2.0, gt=0, description="seconds to reach Redis (or to get a free connection) before an operation fails")
    redis_connections: int = Field(32, ge=2, description="connections each of a replica's Redis pools opens at most (five, six with memory on S3); a burst waits for a free one")
    follow_seconds: float = Field(1.0, gt=0, description="how often the leader's scheduler picks up schedules changed on other replicas")
    poll_seconds: float = Field(1.0, gt=0, description="how often a replica looks for conversations with waiting events and no live lease (a dead replica's)")
    reorder_seconds: float = Field(0.03, ge=0, description="a conversation's first turn on Slack or a Telegram webhook waits this long "
                                   "(plus the slowest other replica's event-loop lag) for an earlier message still on its way "
                                   "to another replica")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="KAGENTBOT_",
        env_nested_delimiter="__",
        extra="forbid",
        toml_file=CONFIG_FILE_NAME,
    )

    data_dir: Path = Field(default_factory=lambda: _default_data_dir())
    admins: CsvList = Field(default_factory=list)  # "slack:U123", "telegram:42", "console:alice"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    llm: LLMSettings = Field(default_factory=LLMSettings)
    agent: AgentSettings = Field(default_factory=AgentSettings)
    embed: EmbedSettings = Field(default_factory=EmbedSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    tools: ToolsSettings = Field(default_factory=ToolsSettings)
    render: RenderSettings = Field(default_factory=RenderSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    persona: PersonaSettings = Field(default_factory=PersonaSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    _split_admins = field_validator("admins", mode="before")(
        classmethod(lambda cls, v: _split_csv(v))
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def is_admin(self, user_key: str) -> bool:
        """`user_key` is platform-qualified: `slack:U123`."""
        return user_key in self.admins

    @property
    def memory_uri(self) -> str:
        return self.memory.uri or str(self.data_dir / "lancedb")


def _default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("kagentbot", appauthor=False))


def load_settings(config_file: Path | None = None, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings once. Raises SettingsError with a readable message."""
    env: Mapping[str, str] = os.environ if environ is None else environ
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist: pass an existing file to --config")
    toml_file = config_file or Path(CONFIG_FILE_NAME)
    try:
        settings_cls = _bound_to(toml_file)
        settings = settings_cls(**overrides)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, toml_file if toml_file.is_file() else None)) from None
    except (ValueError, OSError, RecursionError) as exc:  # malformed or too deeply nested TOML, unreadable file
        raise SettingsError(f"could not read {toml_file}: {exc}") from None
    if not settings.llm.host:
        host = env.get("OLLAMA_HOST") or DEFAULT_OLLAMA_HOST
        settings.llm.host = LLMSettings(host=host).host
    return settings


def _bound_to(toml_file: Path) -> type[Settings]:
    if toml_file == Path(CONFIG_FILE_NAME):
        return Settings

    class FileSettings(Settings):
        model_config = SettingsConfigDict(toml_file=toml_file)

    return FileSettings


def _explain(exc: ValidationError, settings_file: Path | None) -> str:
    """One line per problem, naming where the bad value is set: the settings file only when one
    is in use and holds that key, otherwise the environment variable."""
    in_file = _read_toml(settings_file)
    lines = ["invalid settings:"]
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        dotted = ".".join(loc)
        env = _variable(loc)
        in_settings_file = settings_file if settings_file is not None and _holds(in_file, loc) else None
        if error["type"] == "extra_forbidden":
            source = f"in {in_settings_file.resolve()}" if in_settings_file else f"from the variable {env}"
            lines.append(f"  unknown setting `{dotted}` {source}{_did_you_mean(loc)}")
            continue
        got = error.get("input")
        shown = "" if isinstance(got, dict) else f" (got {got!r})"
        fix = f"Fix `{dotted}` in {in_settings_file.resolve()} or the variable {env}" if in_settings_file \
            else f"Fix the variable {env}"
        lines.append(f"  {dotted}: {error['msg']}{shown}. {fix}.")
    return "\n".join(lines)


def _variable(loc: tuple[str, ...]) -> str:
    return "KAGENTBOT_" + "__".join(part.upper() for part in loc)


def _read_toml(path: Path | None) -> dict[str, Any]:
    """The file as parsed (it parsed once already when the settings were built)."""
    if path is None:
        return {}
    import tomllib

    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}


def _holds(data: dict[str, Any], loc: tuple[str, ...]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def _did_you_mean(loc: tuple[str, ...]) -> str:
    """` (did you mean `llm.model`?)` for a near miss among the section's own settings."""
    import difflib

    model: Any = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return ""
    typed = loc[-1].lower()
    close = difflib.get_close_matches(typed, list(model.model_fields), n=3)
    if not close:
        return ""
    # swapped letters are the commonest slip: `modle` means `model` more than `mode`
    swapped = [name for name in close if sorted(name) == sorted(typed)]
    suggestion = (*loc[:-1], (swapped or close)[0])
    return f" (did you mean `{'.'.join(suggestion)}`?)"
