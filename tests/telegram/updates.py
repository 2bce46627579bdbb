"""Update payloads shaped like the ones Telegram sends (Bot API `Update` / `Message` objects)."""

from __future__ import annotations

import itertools
import time
from typing import Any

BOT_ID = 123456
BOT_USERNAME = "KAgentTestBot"
GROUP = {"id": -1001234567890, "title": "Team room", "type": "supergroup"}
FORUM = {"id": -1009876543210, "title": "Travel desk", "type": "supergroup", "is_forum": True}
ALICE = {"id": 111, "is_bot": False, "first_name": "Alice", "last_name": "Liddell", "username": "alice", "language_code": "en"}
BOB = {"id": 222, "is_bot": False, "first_name": "Bob", "language_code": "de"}
OTHER_BOT = {"id": 999, "is_bot": True, "first_name": "Other", "username": "other_helper_bot"}
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "KAgent", "username": BOT_USERNAME}

_ids = itertools.count(300)


def private_chat(user: dict[str, Any]) -> dict[str, Any]:
    chat = {"id": user["id"], "first_name": user["first_name"], "type": "private"}
    if "username" in user:
        chat["username"] = user["username"]
    return chat


def message(chat: dict[str, Any], sender: dict[str, Any], text: str = "", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"message_id": next(_ids), "from": sender, "chat": chat, "date": int(time.time())}
    if text:
        body["text"] = text
    return body | extra


def update(body: dict[str, Any]) -> dict[str, Any]:
    return {"message": body}


def entity(kind: str, text: str, part: str, **extra: Any) -> dict[str, Any]:
    """An entity over `part` of `text`, with offsets in UTF-16 code units as Telegram counts."""
    start = text.index(part)
    units = lambda s: len(s.encode("utf-16-le")) // 2  # noqa: E731
    return {"offset": units(text[:start]), "length": units(part), "type": kind, **extra}


def group_mention(text_after: str, chat: dict[str, Any] = GROUP, sender: dict[str, Any] = ALICE, **extra: Any) -> dict[str, Any]:
    text = f"@{BOT_USERNAME} {text_after}"
    return update(message(chat, sender, text, entities=[entity("mention", text, f"@{BOT_USERNAME}")], **extra))


def command(text: str, chat: dict[str, Any] = GROUP, sender: dict[str, Any] = ALICE) -> dict[str, Any]:
    name = text.split()[0]
    return update(message(chat, sender, text, entities=[entity("bot_command", text, name)]))


def reply_to_bot(text: str, bot_message_id: int, chat: dict[str, Any] = GROUP, sender: dict[str, Any] = ALICE) -> dict[str, Any]:
    parent = {"message_id": bot_message_id, "from": BOT_USER, "chat": chat, "date": int(time.time()) - 60, "text": "✅ Earlier answer"}
    return update(message(chat, sender, text, reply_to_message=parent))


def forum_topic_mention(text_after: str, topic_id: int = 77, sender: dict[str, Any] = BOB) -> dict[str, Any]:
    """A message inside a forum topic: it carries the topic id and "replies" to the topic's
    service message, as Telegram sends it."""
    created = {"message_id": topic_id, "from": sender, "chat": FORUM, "date": int(time.time()) - 3600,
               "message_thread_id": topic_id, "is_topic_message": True,
               "forum_topic_created": {"name": "Trips", "icon_color": 7322096}}
    text = f"@{BOT_USERNAME} {text_after}"
    return update(message(FORUM, sender, text, entities=[entity("mention", text, f"@{BOT_USERNAME}")],
                          message_thread_id=topic_id, is_topic_message=True, reply_to_message=created))


def document(file_id: str, file_name: str, size: int, caption: str = "/kb add", chat: dict[str, Any] | None = None,
             sender: dict[str, Any] = ALICE, mime: str = "text/plain") -> dict[str, Any]:
    doc = {"file_name": file_name, "mime_type": mime, "file_id": file_id, "file_unique_id": f"AgAD{file_id[-6:]}", "file_size": size}
    entities = [entity("bot_command", caption, caption.split()[0])] if caption.startswith("/") else []
    return update(message(chat or private_chat(sender), sender, document=doc, caption=caption, caption_entities=entities))
