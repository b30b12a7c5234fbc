"""Schemathesis against the generated OpenAPI document: no input makes the API answer 500.

Driven from one plain test (schemathesis' pytest plugin does not load here):
every operation of the document gets a batch of generated requests with the
admin token, against the real app, registry and a FakeFleet.
"""

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.apikit import Api, api_fixture  # noqa: F401

EXAMPLES = 15


def test_no_generated_request_makes_a_500(api: Api) -> None:
    api.create_bot(api.admin, "cli_fuzz")
    spec = api.call(api.anonymous, "GET", "/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    auth = {"Authorization": f"Bearer {api.admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(ops) for ops in spec["paths"].values())
    for operation in operations:
        if operation.path == "/api/feishu/events":
            continue  # a stream that ends only with the service: tests/test_api_events.py

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case: schemathesis.Case) -> None:
            case.headers = {**(case.headers or {}), **auth}
            case.call_and_validate(base_url=api.url, checks=[not_a_server_error])

        check()
