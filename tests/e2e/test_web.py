"""The web page and /docs in a real browser: headless Chromium driven by Selenium.

Chromium resolves no host but the loopback one here (``--host-resolver-rules``), so a page
that needed the internet (a CDN) would break, as it would behind a firewall. Needs Debian's
``chromium`` and ``chromium-driver`` (``scripts/ensure_chromium``, run by ``make test``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service as Driver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from leaderboard.serve.routes import API
from tests.e2e.conftest import Service, bearer, uid
from tests.e2e.test_boards import admin, board_id

REPORTS = Path(__file__).resolve().parents[2] / "reports"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are needed: scripts/ensure_chromium installs them")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1100,1250",
                # no name resolves but loopback: nothing may come from the internet
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Driver(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver: WebDriver, until: Callable[[WebDriver], Any], timeout: float = 15) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(until)


def rows(driver: WebDriver) -> list[tuple[str, str, str]]:
    """The table's (user, score text, movement) rows."""
    found = driver.execute_script(
        "return [...document.querySelectorAll('#top tbody tr[data-user]')].map(r => "
        "[r.dataset.user, r.querySelector('.score').textContent, r.dataset.move])")
    return [tuple(r) for r in found]


def only_loopback(driver: WebDriver, base: str) -> None:
    """Every resource the page loaded came from the service itself."""
    urls = driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert urls and all(u.startswith(base) for u in urls), urls


def sign_up(client: httpx.Client, user: str, region: str = "EU") -> str:
    r = client.post("/auth/register", json={"user_id": user, "name": f"Player {user[-4:]}",
                                            "region": region, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def score(client: httpx.Client, token: str, board: str, value: int) -> dict[str, Any]:
    r = client.post(f"/boards/{board}/scores", json={"score": value}, headers=bearer(token))
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_page_is_live_searchable_and_shows_archives(browser: WebDriver, service: Service) -> None:
    REPORTS.mkdir(exist_ok=True)
    client = httpx.Client(base_url=service.base_url, timeout=30)
    bid = board_id()
    r = client.post("/boards", json={"id": bid, "title": "Weekly sprint", "reset": 20},
                    headers=admin(service))
    assert r.status_code == 201, r.text
    users = [uid("web") for _ in range(4)]
    tokens = [sign_up(client, u, region) for u, region in zip(users, ("EU", "NA", "EU", "NA"),
                                                                strict=True)]
    seasons = {score(client, token, bid, value)["season"]
               for token, value in zip(tokens[:3], (300, 200, 100), strict=True)}
    assert len(seasons) == 1
    first_season = seasons.pop()

    browser.get(f"{service.base_url}/?board={bid}")
    wait(browser, lambda d: len(rows(d)) == 3)
    assert [u for u, _, _ in rows(browser)] == users[:3]
    browser.execute_script("window.notReloaded = true")

    # a write through the API: the table changes without a reload, with the moves shown
    score(client, tokens[3], bid, 250)
    wait(browser, lambda d: [u for u, _, _ in rows(d)] == [users[0], users[3], *users[1:3]])
    assert browser.execute_script("return window.notReloaded") is True
    moves = {u: m for u, _, m in rows(browser)}
    assert moves[users[3]] == "new" and moves[users[1]] == "down" and moves[users[2]] == "down"

    # search a player: rank, percentile, gap to the next rank, players around
    browser.find_element(By.ID, "search-id").send_keys(users[1])
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    found = wait(browser, lambda d: d.find_element(By.ID, "found").text or None)
    # 1 of 4 ranked below: 25%; 250 vs 200, ties to who was first: 51 to pass
    assert "Rank 3 of 4: ahead of 25.0% of players" in found and "51 to pass rank 2" in found
    around = browser.find_elements(By.CSS_SELECTOR, "#found ol.around li")
    assert [li.get_attribute("data-rank") for li in around] == ["1", "2", "3", "4"]
    browser.save_screenshot(str(REPORTS / "web.png"))  # docs/web.png is one of these

    # sign in through the form and submit a score
    browser.find_element(By.ID, "user").send_keys(users[2])
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "login").click()
    wait(browser, lambda d: d.find_element(By.ID, "value").is_displayed())
    browser.find_element(By.ID, "value").send_keys("400")
    browser.find_element(By.CSS_SELECTOR, "#submit button[type=submit]").click()
    wait(browser, lambda d: "rank 1" in d.find_element(By.ID, "play-result").text)
    wait(browser, lambda d: rows(d) and rows(d)[0][0] == users[2])
    assert dict((u, m) for u, _, m in rows(browser))[users[2]] == "up"

    # the season ends (reset every 20 s): the live table empties, the ended season is archived
    wait(browser, lambda d: f"Season {first_season + 1}" in d.find_element(
        By.ID, "season-name").text, timeout=20)
    wait(browser, lambda d: not rows(d))
    picker = Select(browser.find_element(By.ID, "season"))
    wait(browser, lambda d: str(first_season) in [o.get_attribute("value")
                                                  for o in picker.options], timeout=20)
    picker.select_by_value(str(first_season))
    wait(browser, lambda d: d.find_element(By.ID, "status").text == "archived")
    wait(browser, lambda d: [u for u, _, _ in rows(d)] == [users[2], users[0], users[3], users[1]])
    only_loopback(browser, service.base_url)
    client.close()


def test_page_fits_a_phone(browser: WebDriver, service: Service) -> None:
    browser.set_window_size(390, 844)
    try:
        browser.get(f"{service.base_url}/?board=default")
        wait(browser, lambda d: d.find_element(By.ID, "status").text == "live")
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= window.innerWidth")
        unnamed = browser.execute_script(
            "return [...document.querySelectorAll('input, select, button')].filter(e => "
            "!(e.labels && e.labels.length) && !e.getAttribute('aria-label') && "
            "!e.textContent.trim()).map(e => e.id)")
        assert unnamed == []
        browser.save_screenshot(str(REPORTS / "web-phone.png"))
    finally:
        browser.set_window_size(1100, 1250)


def documented_paths(driver: WebDriver) -> set[str]:
    """The paths Swagger UI shows."""
    return set(driver.execute_script(
        "return [...document.querySelectorAll('.opblock-summary-path')]"
        ".map(e => e.getAttribute('data-path') || e.textContent.replace(/\\u200b/g, ''))"))


def test_docs_list_every_path_offline(browser: WebDriver, service: Service) -> None:
    browser.get(f"{service.base_url}/docs")
    expected = {r.path for r in API}
    deadline = time.monotonic() + 20
    while documented_paths(browser) != expected and time.monotonic() < deadline:
        time.sleep(0.2)
    assert documented_paths(browser) == expected
    only_loopback(browser, service.base_url)
