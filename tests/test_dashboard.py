"""The operator dashboard in a real browser against a real service and the simulator.

Debian's Chromium drives the page exactly as an operator would: the only way in
is the token, every state shown comes from the API, and the bot really connects
to (and disconnects from) the simulator. Waits are Playwright expectations on
the DOM with deadlines, never sleeps. The main view is saved to docs/ for the
README on every run.
"""

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from tests.fixtures.service import ADMIN_TOKEN, Service
from tests.fixtures.sim import SimApp

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ENSURE_CHROMIUM = ROOT / "tests" / "browser" / "ensure-chromium.sh"
SCREENSHOT_FOR_DOCS = ROOT / "docs" / "dashboard.png"
"""Rewritten only with LARKFLEET_UPDATE_SCREENSHOT=1, so a test run leaves the tree clean."""
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
LIVE = 20_000  # ms: a worker forks, discovers the endpoint and shakes hands within this


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, installed by the set-up script when missing (root and apt-get)."""
    if not CHROMIUM.exists():
        # `make test` ran this already; a bare `pytest` on a fresh machine gets it here.
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(["sh", str(ENSURE_CHROMIUM)], check=False, timeout=100)
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing and could not be installed: run "
                    f"{ENSURE_CHROMIUM.relative_to(ROOT)} as root (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One supervisor for every dashboard test."""
    service = Service(tmp_path_factory.mktemp("dashboard") / "data").start()
    yield service
    service.stop()


@pytest.fixture
def page(browser: Browser, fleet: Service) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 600})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.goto(fleet.url)
    yield page
    context.close()


def sign_in(page: Page, token: str) -> None:
    page.locator("#token").fill(token)
    page.locator("#token").press("Enter")


def row(page: Page, bot_id: str) -> Locator:
    return page.locator(f'#bots tr[data-bot-id="{bot_id}"]')


def test_operator_signs_in_watches_steers_and_creates(
    page: Page, fleet: Service, sim_app: Callable[..., SimApp], tmp_path: Path
) -> None:
    live, refused = sim_app(), sim_app()
    bot_id = fleet.create_bot(live.app_id, live.app_secret, live.url, name="support-desk")
    fleet.connect(bot_id)
    bad_id = fleet.create_bot(refused.app_id, "wrong-secret", refused.url, name="hr-helpdesk")
    fleet.connect(bad_id)
    fleet.create_bot("cli_idle_app", "idle-secret", live.url, name="sales-digest")

    expect(page).to_have_title("larkfleet")
    sign_in(page, ADMIN_TOKEN)
    expect(page.locator("h1")).to_have_text("larkfleet")
    expect(row(page, bot_id).locator(".badge")).to_have_text("connected", timeout=LIVE)
    expect(row(page, bot_id).locator(".col-heartbeat")).to_contain_text("s ago")
    expect(row(page, bot_id).locator(".col-connectedAt")).not_to_have_text("—")
    expect(row(page, bad_id).locator(".badge")).to_have_text("error", timeout=LIVE)
    expect(row(page, bad_id).locator(".col-error")).not_to_be_empty()
    expect(page.locator('#counts [data-state="connected"] strong')).to_have_text("1")

    page.locator('#counts [data-state="error"]').click()
    expect(row(page, bad_id)).to_be_visible()
    expect(row(page, bot_id)).to_be_hidden()
    page.locator('#counts [data-state="error"]').click()
    page.fill("#filter", "support")
    expect(row(page, bot_id)).to_be_visible()
    expect(row(page, bad_id)).to_be_hidden()
    page.fill("#filter", "")
    expect(row(page, bad_id)).to_be_visible()

    row(page, bot_id).locator('button[data-action="logs"]').click()
    expect(page.locator("#log-bot")).to_have_text(bot_id)
    expect(page.locator("#log-text")).to_contain_text("INFO")
    update_docs = os.environ.get("LARKFLEET_UPDATE_SCREENSHOT") == "1"
    shot = SCREENSHOT_FOR_DOCS if update_docs else tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000

    row(page, bot_id).locator('button[data-action="disconnect"]').click()
    expect(row(page, bot_id).locator(".badge")).to_have_text("disconnected", timeout=LIVE)
    assert live.info()["connections"] == 0

    form = page.locator("#create-form")
    form.locator('[name="name"]').fill("no-app-id")
    form.locator('[name="appSecret"]').fill("typed-secret")
    form.locator('button[type="submit"]').click()
    expect(page.locator("#create-error")).to_contain_text("appId")
    expect(form.locator('[name="appId"]')).to_have_attribute("aria-invalid", "true")
    expect(form.locator('[name="appSecret"]')).to_have_value("")

    html = page.content()
    for secret in (live.app_secret, "wrong-secret", "idle-secret", "typed-secret", ADMIN_TOKEN):
        assert secret not in html


def test_rejected_token_returns_to_sign_in_with_a_message(page: Page) -> None:
    sign_in(page, "not-a-token")
    expect(page.locator("#signin-message")).to_contain_text("401")
    expect(page.locator("#fleet-view")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_sign_out_forgets_the_token(page: Page) -> None:
    sign_in(page, ADMIN_TOKEN)
    expect(page.locator("#sign-out")).to_be_visible()
    page.locator("#sign-out").click()
    expect(page.locator("#signin-view")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_page_is_public_and_serves_only_its_own_files(fleet: Service) -> None:
    anonymous = requests.Session()
    for path, kind in (("/", "text/html"), ("/static/app.js", "text/javascript"),
                       ("/static/app.css", "text/css")):
        response = anonymous.get(fleet.url + path, timeout=5)
        assert response.status_code == 200, path
        assert response.headers["Content-Type"].startswith(kind)
    for path in ("/static/dashboard.py", "/static/..%2Fdashboard.py", "/static/nope.js"):
        assert anonymous.get(fleet.url + path, timeout=5).status_code == 404, path
    assert anonymous.get(fleet.url + "/api/feishu/bots", timeout=5).status_code == 401
