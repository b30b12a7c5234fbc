"""Message parsing: text, post, group mentions, other types, bad content."""

from __future__ import annotations

import json

import pytest

from tests.eventkit import event
from worker.content import (
    MAX_CONTENT_BYTES,
    Addressee,
    ContentError,
    IdentityNeeded,
    Message,
    NotForBot,
    neutralise_at_all,
    parse_event,
)

BOT = {"key": "@_user_1", "name": "Bot", "id": {"open_id": "ou_bot"}}
ALICE = {"key": "@_user_2", "name": "Alice", "id": {"open_id": "ou_alice"}}
ME = Addressee("ou_bot")


def test_text_message() -> None:
    msg = parse_event(event("hello", event_id="e1", chat_id="oc_1"))
    assert isinstance(msg, Message)
    assert (msg.text, msg.chat_id, msg.chat_type, msg.open_id, msg.event_id) == (
        "hello", "oc_1", "p2p", "ou_sender", "e1",
    )


def test_post_is_flattened_to_text() -> None:
    post = {
        "title": "Title",
        "content": [
            [{"tag": "text", "text": "line "}, {"tag": "a", "text": "link", "href": "http://x"}],
            [{"tag": "img", "image_key": "k"}],
            [
                {"tag": "at", "user_id": "@_user_1", "user_name": "Bot"},
                {"tag": "text", "text": " q"},
            ],
        ],
    }
    payload = event(message_type="post", content=json.dumps(post), chat_type="group",
                    mentions=[BOT])
    assert parse_event(payload, ME).text == "Title\nline link\nq"
    wrapped = {"zh_cn": {"title": "", "content": [[{"tag": "text", "text": "hi"}]]}}
    assert parse_event(event(message_type="post", content=json.dumps(wrapped))).text == "hi"
    twice = {"post": wrapped}
    assert parse_event(event(message_type="post", content=json.dumps(twice))).text == "hi"


def test_group_message_needs_a_mention_which_is_stripped() -> None:
    assert isinstance(parse_event(event("hi all", chat_type="group"), ME), NotForBot)
    msg = parse_event(event("@_user_1 what  time?", chat_type="group", mentions=[BOT]), ME)
    assert msg.text == "what time?"


def test_bot_mention_found_by_open_id_others_kept_readable() -> None:
    payload = event("@_user_2 ping @_user_1 now", chat_type="group", mentions=[ALICE, BOT])
    assert parse_event(payload, ME).text == "@Alice ping now"
    with pytest.raises(IdentityNeeded):
        parse_event(payload)


def test_field_case_3_only_the_bots_own_open_id_addresses_it() -> None:
    alice = {"key": "@_user_1", "name": "Alice", "id": {"open_id": "ou_alice"}}
    only_alice = event("@_user_1 can you review my PR?", chat_type="group", mentions=[alice])
    assert isinstance(parse_event(only_alice, ME), NotForBot)
    helpdesk = {"key": "@_user_2", "name": "HelpDesk Bot", "id": {"open_id": "ou_bot"}}
    both = event("@_user_1 please ask @_user_2 about it", chat_type="group",
                 mentions=[alice, helpdesk])
    assert parse_event(both, ME).text == "@Alice please ask about it"


def test_field_case_1_at_all_is_not_a_mention_unless_opted_in() -> None:
    at_all = {"key": "@_all", "name": "所有人", "id": {"open_id": ""}}
    payload = event("@_all standup moved to 10:00", chat_type="group", mentions=[at_all])
    assert isinstance(parse_event(payload, ME), NotForBot)
    assert isinstance(parse_event(payload), NotForBot), "no identity needed to ignore it"
    opted = parse_event(payload, Addressee("ou_bot", answer_at_all=True))
    assert opted.text == "standup moved to 10:00"


def test_field_case_2_placeholders_are_whole_tokens() -> None:
    mentions = [BOT] + [{"key": f"@_user_{i}", "name": f"U{i}", "id": {"open_id": f"ou_{i}"}}
                        for i in range(2, 12)]
    payload = event("@_user_1 ping @_user_10 and @_user_11", chat_type="group", mentions=mentions)
    assert parse_event(payload, ME).text == "ping @U10 and @U11"


def test_field_case_13_app_senders() -> None:
    def from_app(open_id: str) -> bytes:
        body = json.loads(event("echo me"))
        body["event"]["sender"] = {"sender_id": {"open_id": open_id}, "sender_type": "app"}
        return json.dumps(body).encode()

    assert isinstance(parse_event(from_app("ou_other"), ME), NotForBot)
    assert isinstance(parse_event(from_app("ou_bot"), ME), NotForBot)
    bots = Addressee("ou_bot", answer_bots=True)
    assert isinstance(parse_event(from_app("ou_bot"), bots), NotForBot), "never its own"
    assert parse_event(from_app("ou_other"), bots).text == "echo me"


def test_at_all_tags_are_neutralised() -> None:
    text = 'hi <at user_id="all">所有人</at> and <AT user_id=all></at> <at user_id="ou_1">A</at>'
    assert neutralise_at_all(text) == 'hi @所有人 and @all <at user_id="ou_1">A</at>'


def test_other_types_pass_with_raw_content_and_no_text() -> None:
    content = json.dumps({"image_key": "img_1"})
    msg = parse_event(event(message_type="image", content=content))
    assert (msg.text, msg.content, msg.message_type) == (None, content, "image")


def test_other_events_reach_handlers_as_v2_envelopes() -> None:
    added = {"schema": "2.0", "header": {"event_id": "e2", "event_type":
                                         "im.chat.member.bot.added_v1"},
             "event": {"chat_id": "oc_9", "operator_id": {"open_id": "ou_op"}}}
    msg = parse_event(json.dumps(added).encode())
    assert (msg.event_type, msg.chat_id, msg.open_id, msg.text, msg.message_id) == (
        "im.chat.member.bot.added_v1", "oc_9", "ou_op", None, "")
    assert msg.envelope() == added and not msg.is_message
    v1 = {"uuid": "u1", "token": "t", "ts": "1502199207.7171419", "type": "event_callback",
          "event": {"type": "p2p_chat_create", "app_id": "cli_1", "tenant_key": "tk",
                    "chat_id": "oc_p2p"}}
    converted = parse_event(json.dumps(v1).encode())
    assert converted.envelope() == {
        "schema": "1.0",
        "header": {"event_id": "u1", "event_type": "p2p_chat_create",
                   "create_time": "1502199207717", "token": "t", "app_id": "cli_1",
                   "tenant_key": "tk"},
        "event": v1["event"]}
    assert converted.chat_id == "oc_p2p"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        event(content="{broken"),
        event(content=json.dumps({"text": 5})),
        event(content=json.dumps({"text": "x" * (MAX_CONTENT_BYTES + 1)})),
    ],
    ids=["payload", "content", "text-type", "oversized"],
)
def test_bad_content_raises_content_error(payload: bytes) -> None:
    with pytest.raises(ContentError):
        parse_event(payload)


def test_streamed_cards_never_notify_everyone() -> None:
    from worker.streaming import stream_card

    card = stream_card('done <at id=all></at> see <at user_id="ou_1">A</at>', final=True)
    assert card["body"]["elements"][0]["content"] == 'done @all see <at user_id="ou_1">A</at>'


def test_every_post_element_kind_flattens_to_its_text() -> None:
    from worker.content import flatten_post

    data = {"title": "Title", "content": [
        [{"tag": "text", "text": "a"}, {"tag": "a", "text": "link", "href": "https://x"},
         {"tag": "code_block", "text": "code"}, {"tag": "md", "text": "**md**"}],
        [{"tag": "at", "user_id": "@_user_1"}, {"tag": "at", "user_id": "ou_b", "user_name": "Bob"},
         {"tag": "at", "user_id": "ou_c"}, {"tag": "at"}],
        [{"tag": "emotion", "emoji_type": "SMILE"}, {"tag": "emotion"}, {"tag": "text"},
         {"tag": "img", "image_key": "img_1"}, "not an element"],
        [{"tag": "img", "image_key": "img_2"}],
        "not a paragraph",
    ]}
    assert flatten_post(data) == "Title\nalinkcode**md**\n@_user_1@Bob@ou_c@\n[SMILE][]"
    assert flatten_post({"zh_cn": data}) == flatten_post({"post": {"en_us": data}})
    assert flatten_post({"title": "", "content": [[{"tag": "text", "text": "x"}]]}) == "x"
    assert flatten_post({"title": 5, "content": None}) == ""


@pytest.mark.parametrize(("message_type", "content", "expected"), [
    ("text", '{"text": "plain"}', "plain"),
    ("text", "{}", ""),
    ("post", '{"title": "T", "content": []}', "T"),
])
def test_text_of_each_content(message_type: str, content: str, expected: str) -> None:
    from worker.content import _text_of

    assert _text_of(message_type, content) == expected


@pytest.mark.parametrize(("content", "error"), [
    ("not json", "message content is not JSON"),
    ("[1]", "message content is not a JSON object"),
    ('{"text": 5}', "text content without a string text"),
])
def test_bad_content_names_what_is_wrong(content: str, error: str) -> None:
    from worker.content import _text_of

    with pytest.raises(ContentError) as caught:
        _text_of("text", content)
    assert str(caught.value) == error


def test_a_reply_in_a_thread_keeps_its_ids_mentions_and_raw_envelope() -> None:
    body = json.loads(event("hi @_user_2", event_id="ev_ids", mentions=[ALICE]))
    message = body["event"]["message"]
    message.update(root_id="om_root", parent_id="om_parent", thread_id="omt_thread")
    del body["event"]["sender"]["sender_type"]
    raw = json.dumps(body).encode()
    msg = parse_event(raw, ME)
    assert isinstance(msg, Message)
    assert (msg.root_id, msg.parent_id, msg.thread_id) == ("om_root", "om_parent", "omt_thread")
    assert (msg.message_id, msg.mentions, msg.raw) == (message["message_id"], ["Alice"], raw)
    assert (msg.sender_type, msg.text) == ("user", "hi @Alice")


def test_an_event_that_is_not_a_message_names_its_chat_and_operator() -> None:
    body = {"schema": "2.0",
            "header": {"event_id": "ev_added", "event_type": "im.chat.member.bot.added_v1"},
            "event": {"chat_id": "oc_joined", "operator_id": {"open_id": "ou_op"}}}
    msg = parse_event(json.dumps(body).encode())
    assert isinstance(msg, Message)
    assert (msg.event_id, msg.event_type, msg.chat_id, msg.open_id) == (
        "ev_added", "im.chat.member.bot.added_v1", "oc_joined", "ou_op")
    assert (msg.message_id, msg.chat_type, msg.message_type, msg.text, msg.content) == (
        "", "", "", None, "")
    bare = {"schema": "2.0", "header": {"event_id": "ev_bare", "event_type": "x.y_v1"},
            "event": {"chat_id": 5, "operator_id": {"open_id": 7}}}
    other = parse_event(json.dumps(bare).encode())
    assert isinstance(other, Message) and (other.chat_id, other.open_id) == ("", "")
    no_body = parse_event(json.dumps({**bare, "event": []}).encode())
    assert isinstance(no_body, Message) and (no_body.chat_id, no_body.open_id) == ("", "")


def test_content_exactly_at_the_limit_is_accepted() -> None:
    text = "x" * (MAX_CONTENT_BYTES - len(json.dumps({"text": ""})))
    assert len(json.dumps({"text": text}).encode()) == MAX_CONTENT_BYTES
    msg = parse_event(event(text))
    assert isinstance(msg, Message) and msg.text == text


def test_a_longer_mention_key_is_not_eaten_by_a_shorter_one() -> None:
    ten = {"key": "@_user_10", "name": "Ten", "id": {"open_id": "ou_ten"}}
    one = {"key": "@_user_1", "name": "One", "id": {"open_id": "ou_one"}}
    msg = parse_event(event("@_user_1 and @_user_10", mentions=[one, ten]), ME)
    assert isinstance(msg, Message) and msg.text == "@One and @Ten"


def test_payloads_and_answers_that_are_not_utf8_are_refused_not_raised() -> None:
    """msgspec raises UnicodeDecodeError (not DecodeError) for such bytes in a string: each
    decoder of bytes from outside answers its own "undecodable" instead of crashing."""
    from worker.cardaction import is_card_action, parse_card_action
    from worker.envelope import to_v2
    from worker.errors import EventError
    from worker.handlers.forward import _json_of

    bad = event("hello").replace(b"hello", b"\xff\xfe")
    with pytest.raises(ContentError, match="undecodable"):
        parse_event(bad)
    with pytest.raises(ValueError):
        to_v2(b'{"header": {"event_type": "\xff"}}')
    card = b'{"header": {"event_type": "card.action.trigger", "event_id": "\xff"}}'
    assert is_card_action(card) is False
    with pytest.raises(ValueError, match="undecodable"):
        parse_card_action(card)
    with pytest.raises(EventError, match="not JSON"):
        _json_of(b'{"text": "\xff"}')
