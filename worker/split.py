"""Split an answer that is over the platform's size limit into ordered parts.

The create and reply APIs refuse a text message whose request body is over
150 KB, and a post or card over 30 KB, with code 230025 (im-v1 message
create doc, "content" limits; error 230025 "The message content is too
long"). The body holds the content as a JSON string inside JSON, so a quote
or a newline costs more than one byte: parts are measured as they will be
sent. Cuts fall on paragraph boundaries (a blank line) when a part can end
there, else on line boundaries, else inside the line (at a character, never
inside a UTF-8 sequence). The same text always splits the same way, so each
part keeps a stable position, and so a stable uuid, across retries.
"""

import json
from typing import Any

from shared.results import Card, Post, Reply, Text, to_content
from worker.content import flatten_post

TEXT_BODY_LIMIT = 150 * 1024
CARD_BODY_LIMIT = 30 * 1024
BODY_OVERHEAD = 512
"""Bytes kept for the body's other fields (msg_type, uuid, receive_id, reply_in_thread)."""


def text_body_size(text: str) -> int:
    """Bytes a text message's content takes in the request body (content JSON in JSON)."""
    content = json.dumps({"text": text}, ensure_ascii=False)
    return len(json.dumps(content, ensure_ascii=False).encode())


def split_text(text: str, limit: int = TEXT_BODY_LIMIT) -> list[str]:
    """Parts of `text`, in order, each with text_body_size under `limit - BODY_OVERHEAD`."""
    budget = limit - BODY_OVERHEAD
    if text_body_size(text) <= budget:
        return [text]
    empty = text_body_size("")
    parts: list[str] = []
    current: list[str] = []
    size = empty
    for piece in _pieces(text, budget):
        cost = text_body_size(piece) - empty  # escaping is per character: sizes add up
        if current and size + cost > budget:
            parts.append("".join(current))
            current, size = [], empty
        current.append(piece)
        size += cost
    if current:
        parts.append("".join(current))
    return [p.strip("\n") for p in parts if p.strip("\n")] or [text[:1]]


def _pieces(text: str, budget: int) -> list[str]:
    """Paragraphs (each with its trailing blank line), lines when a paragraph alone is
    over budget, character runs when a line is."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        paragraph += "\n\n"
        if text_body_size(paragraph) <= budget:
            pieces.append(paragraph)
            continue
        for line in paragraph.splitlines(keepends=True):
            if text_body_size(line) <= budget:
                pieces.append(line)
            else:
                pieces.extend(_runs(line, budget))
    return pieces


def _runs(line: str, budget: int) -> list[str]:
    runs: list[str] = []
    start = 0
    while start < len(line):
        low, high = start + 1, len(line)
        while low < high:  # the longest run from `start` that fits
            middle = (low + high + 1) // 2
            if text_body_size(line[start:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        runs.append(line[start:low])
        start = low
    return runs


def content_body_size(content: str) -> int:
    """Bytes a message content JSON string takes in the request body."""
    return len(json.dumps(content, ensure_ascii=False).encode())


def split_reply(reply: Reply) -> list[Reply]:
    """One handler reply as the parts to send: a text over 150 KB as text parts; a post or
    card over 30 KB, which cannot be cut into valid pieces, as text parts of its text."""
    if isinstance(reply, Text):
        return [Text(text=part) for part in split_text(reply.text, TEXT_BODY_LIMIT)]
    if isinstance(reply, Post | Card):
        _, content = to_content(reply)
        if content_body_size(content) + BODY_OVERHEAD > CARD_BODY_LIMIT:
            text = flatten_post(reply.post) if isinstance(reply, Post) else card_text(reply.card)
            return [Text(text=part) for part in split_text(text, TEXT_BODY_LIMIT)]
    return [reply]


def card_text(card: Any) -> str:
    """The readable text of a card JSON: every `content` and `text` string, in order."""
    lines: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("content", "text") and isinstance(value, str):
                    lines.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(line for line in lines if line)
