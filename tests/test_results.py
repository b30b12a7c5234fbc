"""Handler result shapes (architecture.md "Handler results") and idempotency keys."""

import base64

import msgspec
import pytest

from shared.idempotency import api_send_uuid, send_uuid
from shared.results import (
    Card,
    CardActionResult,
    File,
    Image,
    Post,
    ResultError,
    Template,
    Text,
    decode_replies,
    encode_replies,
    parse_card_action_result,
    parse_result,
    to_content,
)
from worker.replies import reply_uuid

PNG = base64.b64encode(b"\x89PNG fake").decode()
CARD = {"schema": "2.0", "body": {"elements": [{"tag": "markdown", "content": "hi"}]}}
POST = {"zh_cn": {"title": "T", "content": [[{"tag": "text", "text": "x"}]]}}


def test_every_documented_shape_parses() -> None:
    assert parse_result(None) == []
    assert parse_result("") == []
    assert parse_result("hi") == [Text(text="hi")]
    assert parse_result({"text": "hi"}) == [Text(text="hi")]
    assert parse_result({"post": POST}) == [Post(post=POST)]
    assert parse_result({"card": CARD}) == [Card(card=CARD)]
    [template] = parse_result({"cardTemplate": {"id": "AAq1", "variables": {"a": 1}}})
    assert isinstance(template, Template) and template.card_template.variables == {"a": 1}
    [image] = parse_result({"image": {"base64": PNG}})
    assert isinstance(image, Image)
    [file] = parse_result({"file": {"base64": PNG, "name": "a.pdf"}})
    assert isinstance(file, File) and file.file.name == "a.pdf"
    many = parse_result({"messages": ["a", {"card": CARD}, {"text": "b"}]})
    assert many == [Text(text="a"), Card(card=CARD), Text(text="b")]


def test_bad_results_name_the_field() -> None:
    cases = {
        "$.messages[1].card": {"messages": ["a", {"card": "not an object"}]},
        "$.messages[0]": {"messages": [{"text": "a", "card": CARD}]},
        "$.image.base64": {"image": {"base64": "!!!"}},
        "$.file": {"file": {"base64": PNG}},
        "$": 42,
        "$.cardTemplate.id": {"cardTemplate": {"id": ""}},
    }
    for path, value in cases.items():
        with pytest.raises(ResultError) as caught:
            parse_result(value)
        assert f"`{path}" in str(caught.value), (path, str(caught.value))


def test_content_per_message_type() -> None:
    assert to_content(Text(text="hé")) == ("text", '{"text":"hé"}')
    assert to_content(Card(card=CARD))[0] == "interactive"
    [template] = parse_result({"cardTemplate": {"id": "AAq1", "version": "1.0.2"}})
    msg_type, content = to_content(template)
    assert msg_type == "interactive"
    assert msgspec.json.decode(content) == {"type": "template", "data": {
        "template_id": "AAq1", "template_variable": {}, "template_version_name": "1.0.2"}}
    [image] = parse_result({"image": {"base64": PNG}})
    assert to_content(image, "img_k") == ("image", '{"image_key":"img_k"}')
    with pytest.raises(ValueError):
        to_content(image)


def test_spool_form_round_trips_and_reads_old_plain_text() -> None:
    replies = parse_result({"messages": ["a", {"card": CARD}, {"image": {"base64": PNG}}]})
    assert decode_replies(encode_replies(replies)) == replies
    assert decode_replies("an answer stored by an older version") == [
        Text(text="an answer stored by an older version")]
    assert decode_replies("[not json") == [Text(text="[not json")]


def test_card_action_result_goes_to_the_platform_wrapped() -> None:
    assert parse_card_action_result(None) is None
    assert parse_card_action_result({}) is None
    result = parse_card_action_result({"toast": {"type": "success", "content": "ok"},
                                       "card": CARD})
    assert isinstance(result, CardActionResult)
    assert result.wire() == {"toast": {"content": "ok", "type": "success"},
                             "card": {"type": "raw", "data": CARD}}
    with pytest.raises(ResultError, match="toast"):
        parse_card_action_result({"toast": {"type": "loud", "content": "x"}})
    with pytest.raises(ResultError, match="unexpected"):
        parse_card_action_result({"text": "x"})


def test_uuids_are_stable_distinct_and_compatible() -> None:
    assert send_uuid("ev1") == send_uuid("ev1") == reply_uuid("ev1")
    keys = {send_uuid("ev1", p, q) for p in range(3) for q in range(3)}
    assert len(keys) == 9
    assert all(len(k) <= 50 for k in keys)
    assert api_send_uuid(None, 1) is None
    assert api_send_uuid("mine") == "mine"
    assert api_send_uuid("mine", 1) == send_uuid("mine", 1)
