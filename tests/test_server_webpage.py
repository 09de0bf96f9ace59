"""The web page `ferrograph serve` serves at `/`: its files over HTTP, then the page itself
driven in headless Chromium (Debian's `chromium` and `chromium-driver`, which
scripts/ensure-services.sh installs): a filtered run whose chosen node's tokens fill its lane,
and an interrupt answered from the page, with the thread's history listed."""

from __future__ import annotations

import json

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from ferrograph.local_openai import reply_for
from tests.server_support import HeldModel, ferrograph_serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

WAIT = 90.0
"""Seconds the browser is given to reach a state (a deadline, never a pause)."""


def waiting(driver) -> WebDriverWait:
    """A wait that looks again when the page re-rendered an element under it (a stale one)."""
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with HeldModel() as model, ferrograph_serve(model, tmp_path_factory.mktemp("page")) as proc:
        yield proc.url


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_root_serves_the_page_and_its_assets(server):
    page = httpx.get(server + "/", headers={"accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert 'id="assistant"' in page.text
    script = httpx.get(server + "/static/page.js")
    assert script.status_code == 200
    assert script.headers["content-type"].split(";")[0] in ("text/javascript",
                                                             "application/javascript")
    assert "readEvents" in script.text
    style = httpx.get(server + "/static/page.css")
    assert style.status_code == 200
    assert style.headers["content-type"].startswith("text/css")
    assert httpx.get(server + "/static/nothing.js").status_code == 404


def test_root_is_still_the_health_check_for_other_clients(server):
    # LangGraph's server answers `/` as `/ok` (a load balancer's check): so do we unless the
    # client asks for HTML
    root = httpx.get(server + "/")
    assert root.status_code == 200
    assert root.json() == httpx.get(server + "/ok").json()


def by_testid(testid):
    return By.CSS_SELECTOR, f'[data-testid="{testid}"]'


def text_of(driver, testid):
    return driver.find_element(*by_testid(testid)).get_property("textContent")


def open_page(driver, url):
    driver.get(url + "/")
    waiting(driver).until(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "true")


def choose_graph(driver, graph, node):
    """Picks `graph` (once the list has it) and waits for its node checkboxes (`node` among
    them)."""
    waiting(driver).until(lambda d: graph in [
        o.text for o in Select(d.find_element(*by_testid("assistant"))).options])
    Select(driver.find_element(*by_testid("assistant"))).select_by_visible_text(graph)
    waiting(driver).until(ec.presence_of_element_located(by_testid(f"node-{node}")))


def type_into(driver, testid, text):
    box = driver.find_element(*by_testid(testid))
    box.clear()
    box.send_keys(text)


def new_thread(driver) -> str:
    """Makes a thread from the page (its "New thread" button); the new thread's id."""
    driver.find_element(*by_testid("new-thread")).click()
    return waiting(driver).until(
        lambda d: d.find_element(*by_testid("thread")).get_property("value") or False)


def send_input(driver, text: str, status: str) -> None:
    """Sends `text` as the run's input and waits for the run to end as `status`."""
    type_into(driver, "input", text)
    driver.find_element(*by_testid("send")).click()
    wait_for_status(driver, status)


def wait_for_status(driver, status):
    try:
        waiting(driver).until(lambda d: text_of(d, "run-status") in (status, "error"))
    except TimeoutException:
        raise AssertionError(f"the run is {text_of(driver, 'run-status')}, not {status}; "
                             f"log: {driver.get_log('browser')}") from None
    assert text_of(driver, "run-status") == status, text_of(driver, "error")


def test_chosen_nodes_tokens_fill_their_lane(server, browser):
    open_page(browser, server)
    choose_graph(browser, "seed", "write_poem")
    joke_box = browser.find_element(*by_testid("node-write_joke"))
    assert joke_box.is_selected() and browser.find_element(*by_testid("node-write_poem")).is_selected()
    joke_box.click()
    Select(browser.find_element(*by_testid("thread"))).select_by_value("")
    type_into(browser, "input", '{"topic": "owls"}')
    browser.find_element(*by_testid("send")).click()
    wait_for_status(browser, "success")

    poem = reply_for([{"role": "user", "content": "Write a short poem about owls"}])
    assert text_of(browser, "tokens-write_poem") == poem
    assert [lane.get_property("textContent") for lane in
            browser.find_elements(*by_testid("tokens-write_joke"))] in ([], [""])
    # the filter chooses what streams, not what runs: the state has the joke too
    state = json.loads(text_of(browser, "state"))
    assert state["poem"] == poem
    assert state["joke"] == reply_for([{"role": "user", "content": "Write a joke about owls"}])


def test_interrupt_answered_from_the_page(server, browser):
    open_page(browser, server)
    choose_graph(browser, "ask", "ask_name")
    thread_id = new_thread(browser)
    send_input(browser, '{"count": 1}', "interrupted")

    waiting(browser).until(ec.visibility_of_element_located(by_testid("interrupt")))
    assert json.loads(text_of(browser, "interrupt-value")) == {"question": "name?", "count": 2}
    assert json.loads(text_of(browser, "updates-first")) == {"count": 2, "log": ["first"]}
    type_into(browser, "resume", "bob")
    browser.find_element(*by_testid("resume-send")).click()
    wait_for_status(browser, "success")

    assert not browser.find_element(*by_testid("interrupt")).is_displayed()
    assert json.loads(text_of(browser, "state")) == {
        "count": 20, "log": ["first", "hello bob", "second"]}
    # the history lists the thread's checkpoints as the API gives them, newest first
    history = httpx.post(f"{server}/threads/{thread_id}/history", json={"limit": 100}).json()
    items = browser.find_elements(*by_testid("checkpoint"))
    assert [(i.get_attribute("data-step"), i.get_attribute("data-source")) for i in items] == [
        (str(c["metadata"]["step"]), c["metadata"]["source"]) for c in history]
    assert [c["metadata"]["step"] for c in history] == [3, 2, 1, 0, -1]
    summaries = [i.get_property("textContent") for i in items]
    assert summaries[2].startswith("step 1 · loop · next: ask_name · ")
    assert summaries[0].startswith("step 3 · loop · next: (end) · ")


def test_several_interrupts_answered_each_by_its_id(server, browser):
    """Two nodes of one step interrupt: the page asks both questions, and the resume answers
    each by its interrupt's id."""
    open_page(browser, server)
    choose_graph(browser, "ask_both", "ask_city")
    thread_id = new_thread(browser)
    send_input(browser, '{"count": 1}', "interrupted")

    pending = httpx.get(f"{server}/threads/{thread_id}").json()["interrupts"]
    ids = {i["value"]["question"]: i["id"] for found in pending.values() for i in found}
    assert set(ids) == {"name?", "city?"}
    waiting(browser).until(
        ec.visibility_of_element_located(by_testid(f"resume-{ids['city?']}")))
    assert not browser.find_element(*by_testid("resume")).is_displayed()
    for question, reply in (("name?", "ann"), ("city?", "Oslo")):
        assert json.loads(text_of(browser, f"interrupt-value-{ids[question]}"))["question"] \
            == question
        type_into(browser, f"resume-{ids[question]}", reply)
    browser.find_element(*by_testid("resume-send")).click()
    wait_for_status(browser, "success")

    state = json.loads(text_of(browser, "state"))
    assert sorted(state["log"]) == ["from Oslo", "hello ann", "second"]
    assert state["count"] == 10


def test_a_token_signs_the_page_in_on_a_server_with_auth(tmp_path, browser):
    with HeldModel() as model, ferrograph_serve(model, tmp_path,
                                                config="langgraph-auth.json") as proc:
        headers = {"authorization": "Bearer token-alice"}
        # this auth shows a user the assistants she made (its search handler asks for them)
        assert httpx.post(proc.url + "/assistants", headers=headers, json={
            "graph_id": "counter", "name": "alices"}).status_code == 200
        open_page(browser, proc.url)
        # without a token the API refuses the page, which says so
        waiting(browser).until(lambda d: "401" in text_of(d, "error"))
        type_into(browser, "token", "token-alice")
        browser.find_element(*by_testid("token")).send_keys(Keys.TAB)  # `change`
        choose_graph(browser, "alices (counter)", "second")
        Select(browser.find_element(*by_testid("thread"))).select_by_value("")
        type_into(browser, "input", '{"count": 1}')
        browser.find_element(*by_testid("send")).click()
        wait_for_status(browser, "success")
        assert json.loads(text_of(browser, "state")) == {"count": 20, "log": ["first", "second"]}
        # the thread is alice's: the server stamped it, and bob does not see it
        threads = httpx.post(proc.url + "/threads/search", json={}, headers=headers).json()
        assert [t["metadata"]["owner"] for t in threads] == ["alice"]
        assert httpx.post(proc.url + "/threads/search", json={},
                          headers={"authorization": "Bearer token-bob"}).json() == []
