"""The web page in a real browser (issue #13): Playwright drives Debian's Chromium
(``/usr/bin/chromium``; never ``playwright install``) against ``cinerec serve --demo`` on
free ports. A new visitor signs up, picks genres, gets recommendations with reasons, likes
one (the list changes and names it), says "not interested" to one (it never returns), opens
"more like this", searches, and signs out; on a desktop and on a phone-sized screen.

With ``CINEREC_SCREENSHOTS=1`` the screenshots go to ``docs/img/web_*.png`` (``docs/web.md``
shows them). Without chromium the test skips, except under ``CINEREC_REQUIRE_SERVICES=1``
(``.ci/run``, which installs it), where a missing browser fails the run.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from tests.conftest import REQUIRE_SERVICES
from tests.e2e.test_http import ROOT, Server, start_server

CHROMIUM = Path("/usr/bin/chromium")
#: where the screenshots go: docs/img (what docs/web.md shows) with CINEREC_SCREENSHOTS=1,
#: else a temporary folder, so that a test run leaves the checkout as it found it
SHOTS = (
    ROOT / "docs" / "img"
    if os.environ.get("CINEREC_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "cinerec-web-shots"
)
PASSWORD = "a long enough password"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM))
        yield b
        b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(tmp_path_factory.mktemp("web"), "--demo", timeout=120)
    yield s
    s.stop()


def ids(page: Page, scope: str = "") -> list[str]:
    cards = page.locator(f"{scope} [data-movie-id]".strip())
    return [str(cards.nth(i).get_attribute("data-movie-id")) for i in range(cards.count())]


def for_you_ids(page: Page) -> list[str]:
    return ids(page, "#for-you")


def test_a_new_visitor_walks_the_page(browser: Browser, server: Server) -> None:
    base = str(server.main.base_url).rstrip("/")
    user = f"visitor-{uuid.uuid4().hex[:8]}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    desktop = browser.new_context(viewport=DESKTOP)
    page = desktop.new_page()

    # Sign up: the root leads to the sign-in form, which offers an account.
    page.goto(base + "/")
    expect(page).to_have_url(f"{base}/web/signin")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password (at least 8 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Create account", exact=True).click()

    # First visit: top-rated movies and genre tops; pick three genres.
    expect(page).to_have_url(f"{base}/web/welcome")
    expect(page.get_by_role("heading", name="Top rated")).to_be_visible()
    expect(page.locator("ul[aria-label='Top rated'] [data-movie-id]")).to_have_count(12)
    for genre in ("Comedy", "Sci-Fi", "Crime"):
        page.get_by_label(genre, exact=True).check()
    page.screenshot(path=SHOTS / "web_welcome_desktop.png")
    page.get_by_role("button", name="Save and show my recommendations", exact=True).click()

    # Home: "For you" with a reason under every movie, a row per favourite genre.
    expect(page).to_have_url(f"{base}/web")
    expect(page.locator("#for-you [data-movie-id]")).to_have_count(10)
    expect(page.locator("#for-you .reason")).to_have_count(10)
    for genre in ("Comedy", "Sci-Fi", "Crime"):
        expect(page.get_by_role("heading", name=f"Worth watching in {genre}")).to_be_visible()
    page.screenshot(path=SHOTS / "web_home_desktop.png", full_page=True)

    # Like the first movie: the list is swapped for the next one, without a reload, and the
    # next one is made from the like.
    before = for_you_ids(page)
    first = page.locator("#for-you [data-movie-id]").first
    title = first.locator(".title").inner_text()
    page.evaluate("window.notReloaded = true")
    first.get_by_role("button", name=f"Like: {title}", exact=True).click()
    page.wait_for_function(
        "before => [...document.querySelectorAll('#for-you [data-movie-id]')]"
        ".map(e => e.dataset.movieId).join() !== before.join()",
        arg=before,
    )
    assert page.evaluate("window.notReloaded") is True
    after = for_you_ids(page)
    assert len(after) == 10 and not set(before) & set(after)
    expect(
        page.locator("#for-you .reason", has_text=f"Because you liked {title}")
    ).not_to_have_count(0)
    expect(page.get_by_role("status")).to_contain_text(f"Liked {title}")

    # "More like this" opens the similar movies under the card.
    card = page.locator("#for-you [data-movie-id]").first
    card_title = card.locator(".title").inner_text()
    card.get_by_role("button", name=f"More like this: {card_title}", exact=True).click()
    similar = page.locator("#for-you .similar-row")
    expect(similar.get_by_role("heading", name=f"More like {card_title}")).to_be_visible()
    expect(similar.locator("[data-movie-id]").first).to_be_visible()

    # "Not interested" on a movie of a genre row: it leaves the page and never returns.
    row = page.locator("section.genre-row").first
    gone = row.locator("[data-movie-id]").first
    gone_id = str(gone.get_attribute("data-movie-id"))
    gone_title = gone.locator(".title").inner_text()
    gone.get_by_role("button", name=f"Not interested: {gone_title}", exact=True).click()
    expect(page.locator(f"[data-movie-id='{gone_id}']")).to_have_count(0)
    for _ in range(3):
        page.reload()
        expect(page.locator("#for-you [data-movie-id]")).to_have_count(10)
        assert gone_id not in ids(page)

    # My likes lists the like.
    page.get_by_role("link", name="My likes").click()
    expect(page.locator("[data-movie-id]")).to_have_count(1)
    expect(page.locator(".title")).to_have_text(title)

    # Search by title (the database's full-text index).
    page.get_by_label("Search movies by title").fill("matrix")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{base}/web/search?q=matrix")
    matrix = page.locator(".title").get_by_text("Matrix, The", exact=True)
    expect(matrix).to_have_count(1)
    matrix.click()
    expect(page.get_by_role("heading", name="Similar movies")).to_be_visible()
    expect(page.locator("ul[aria-label^='Similar to'] [data-movie-id]")).not_to_have_count(0)

    # A phone-sized screen: the same session, nothing wider than the screen, and the
    # buttons work from the keyboard.
    phone = browser.new_context(viewport=PHONE, storage_state=desktop.storage_state())
    small = phone.new_page()
    small.goto(base + "/web")
    expect(small.locator("#for-you [data-movie-id]")).to_have_count(10)
    assert small.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    small.screenshot(path=SHOTS / "web_home_phone.png")
    before = for_you_ids(small)
    target = small.locator("#for-you [data-movie-id]").first
    target_title = target.locator(".title").inner_text()
    target.get_by_role("button", name=f"Dislike: {target_title}", exact=True).focus()
    small.keyboard.press("Enter")
    small.wait_for_function(
        "before => [...document.querySelectorAll('#for-you [data-movie-id]')]"
        ".map(e => e.dataset.movieId).join() !== before.join()",
        arg=before,
    )
    small.get_by_label("Search movies by title").fill("toy story")
    small.keyboard.press("Enter")
    expect(small.locator(".title", has_text="Toy Story")).not_to_have_count(0)
    small.screenshot(path=SHOTS / "web_search_phone.png")
    phone.close()

    # Sign out: the page asks to sign in again.
    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page).to_have_url(f"{base}/web/signin")
    page.goto(base + "/web")
    expect(page).to_have_url(f"{base}/web/signin?next=/web")
    desktop.close()
