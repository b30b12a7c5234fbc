"""Health, readiness, Prometheus metrics and the generated OpenAPI document."""

from prometheus_client.parser import text_string_to_metric_families

from api.dashboard import is_public
from tests.apikit import Api, api_fixture, assert_error  # noqa: F401


def test_healthz_always_readyz_follows_the_fleet(api: Api) -> None:
    assert api.call(api.anonymous, "GET", "/healthz").json() == {"status": "ok"}
    api.fleet.is_ready = False
    assert_error(api.call(api.anonymous, "GET", "/readyz"), 503, "not_ready")
    assert api.call(api.anonymous, "GET", "/healthz").status_code == 200
    api.fleet.is_ready = True
    assert api.call(api.anonymous, "GET", "/readyz").json() == {
        "status": "ready", "node": "test-node"}


def test_metrics_names_and_values(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    api.call(api.admin, "POST", f"/api/feishu/bots/{bot_id}/ws/connect")
    response = api.call(api.anonymous, "GET", "/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("larkfleet_bots", (("state", "connecting"),))] == 1
    assert samples[("larkfleet_bots", (("state", "connected"),))] == 0
    label = (("bot_id", bot_id),)
    assert samples[("larkfleet_bot_restarts_total", label)] == 2
    assert samples[("larkfleet_bot_events_received_total", label)] == 5
    assert samples[("larkfleet_bot_events_handled_total", label)] == 4
    assert samples[("larkfleet_bot_events_failed_total", label)] == 2
    assert samples[("larkfleet_bot_replies_sent_total", label)] == 1
    for name in ("larkfleet_bot_pending", "larkfleet_bot_dead_letters",
                 "larkfleet_bot_private_bytes", "larkfleet_bot_connected"):
        assert (name, label) in samples, name


def test_latency_histograms_are_cumulative_per_bot(api: Api) -> None:
    bot_id = api.create_bot(api.admin)
    text = api.call(api.anonymous, "GET", "/metrics").text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ack = families["larkfleet_bot_ack_latency_seconds"]
    assert ack.type == "histogram"
    buckets = {s.labels["le"]: s.value for s in ack.samples
               if s.name.endswith("_bucket") and s.labels["bot_id"] == bot_id}
    assert buckets["0.0005"] == 2 and buckets["0.25"] == 2 and buckets["1.0"] == 2
    assert buckets["+Inf"] == 3
    totals = {s.name: s.value for s in ack.samples if not s.name.endswith("_bucket")}
    assert totals == {"larkfleet_bot_ack_latency_seconds_count": 3,
                      "larkfleet_bot_ack_latency_seconds_sum": 2.5}
    reply = families["larkfleet_bot_reply_latency_seconds"]
    reply_buckets = {s.labels["le"]: s.value for s in reply.samples if s.name.endswith("_bucket")}
    assert (reply_buckets["0.5"], reply_buckets["1.0"], reply_buckets["+Inf"]) == (0, 1, 1)


def test_openapi_lists_every_served_route(api: Api) -> None:
    spec = api.call(api.anonymous, "GET", "/api/openapi.json").json()
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in api.app.router.routes()
        if route.method != "HEAD" and not is_public(route.resource.canonical)
    }
    documented = {(method, path) for path, ops in spec["paths"].items() for method in ops}
    assert documented == served
    schemas = spec["components"]["schemas"]
    create = schemas["CreateBot"]
    assert set(create["required"]) == {"name", "appId", "appSecret"}
    assert "useWebSocket" in create["properties"]
    assert "appSecret" not in schemas["BotView"]["properties"]
    assert "hasAppSecret" in schemas["BotView"]["properties"]
    operation = spec["paths"]["/api/feishu/bots"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateBot"}
    assert {"201", "400", "401", "409", "413"} <= set(operation["responses"])
    assert "security" not in spec["paths"]["/webhook/feishu/{id}"]["post"]


def test_dashboard_is_served_without_a_token(api: Api) -> None:
    page = api.call(api.anonymous, "GET", "/")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert_error(api.call(api.anonymous, "GET", "/static/nope.js"), 404)
