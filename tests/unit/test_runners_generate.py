"""The offline Case planner on recorded page snapshots (pure: no browser, no broker)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from runners.generate import (
    OfflinePlanner,
    PlanRequest,
    links_to_explore,
    plan_offline,
    planner_from_env,
    snapshot_from_json,
)
from streams.domain.case import parse_create

SITE = "http://127.0.0.1:8000/"


def el(selector: str, text: str = "", **extra: Any) -> dict[str, Any]:
    return {"selector": selector, "text": text, "visible": True, **extra}


# As SNAPSHOT_JS returned them on the test site (tests/site/pages).
START = {
    "url": SITE,
    "title": "Test site",
    "headings": [el("#title", "Welcome to the test site")],
    "links": [
        el("#link-about", "About", href=SITE + "about.html", target=""),
        el("#link-form", "Contact", href=SITE + "form.html", target=""),
        el("#link-console", "Console", href=SITE + "console.html", target=""),
        el("#ext", "Elsewhere", href="https://example.com/", target=""),
        el("#new-tab", "New tab", href=SITE + "x.html", target="_blank"),
        el("#self", "Top", href=SITE + "#top", target=""),
    ],
    "buttons": [],
    "forms": [],
}
ABOUT = {
    "url": SITE + "about.html",
    "title": "About",
    "headings": [el("#title", "About this site")],
    "links": [el("#link-home", "Home", href=SITE, target="")],
    "buttons": [],
    "forms": [],
}
FORM = {
    "url": SITE + "form.html",
    "title": "Contact",
    "headings": [el("#title", "Contact")],
    "links": [el("#link-home", "Home", href=SITE, target="")],
    "buttons": [el("#send", "Send", type="submit")],
    "forms": [
        el(
            "#contact",
            "Name Message Send",
            fields=[
                el("#name", "", type="text", name="name"),
                el("#message", "", type="textarea", name="message"),
                el("#hidden", "", type="hidden", name="token", visible=False),
            ],
        )
    ],
}


def request(max_layers: int = 10, prompt: str = "") -> PlanRequest:
    return PlanRequest(
        SITE,
        max_layers,
        prompt,
        snapshot_from_json(START),
        (snapshot_from_json(ABOUT), snapshot_from_json(FORM)),
    )


def test_only_same_origin_same_tab_other_pages_are_explored() -> None:
    urls = links_to_explore(SITE, snapshot_from_json(START), 5)
    assert urls == [SITE + "about.html", SITE + "form.html", SITE + "console.html"]
    assert links_to_explore(SITE, snapshot_from_json(START), 1) == [SITE + "about.html"]


def test_the_plan_opens_the_start_page_follows_the_form_link_and_fills_it() -> None:
    plan = plan_offline(request(prompt="test the contact form"))
    steps = plan.steps
    assert steps[0]["action"] == {**steps[0]["action"], "type": "navigate", "path": "/"}
    assert steps[0]["assertion"]["type"] == "match"
    assert steps[0]["assertion"]["value"] == "Welcome to the test site"
    # the click is checked by something the start page does not have
    assert steps[1]["action"]["type"] == "click"
    assert steps[1]["action"]["element"]["selector"] == "#link-form"
    assert steps[1]["assertion"] == {**steps[1]["assertion"], "type": "visible"}
    assert steps[1]["assertion"]["element"]["selector"] == "#contact"
    assert steps[2]["action"]["type"] == ""
    assert steps[2]["assertion"]["value"] == "Contact"
    changes = [s for s in steps if s["action"]["type"] == "change"]
    assert [s["action"]["element"]["selector"] for s in changes] == ["#name", "#message"]
    # never a click on a button (no form is submitted)
    clicks = [s["action"]["element"]["selector"] for s in steps if s["action"]["type"] == "click"]
    assert clicks == ["#link-form"]
    assert "contact form" in plan.name


def test_the_prompt_chooses_the_page() -> None:
    steps = plan_offline(request(prompt="check the about page")).steps
    assert steps[1]["action"]["element"]["selector"] == "#link-about"
    # without a prompt a page with a form wins
    assert plan_offline(request()).steps[1]["action"]["element"]["selector"] == "#link-form"


@pytest.mark.parametrize("layers", [1, 2, 3, 5, 20])
def test_at_most_max_layers_steps_and_each_valid_for_post_case(layers: int) -> None:
    plan = plan_offline(request(layers, "contact"))
    assert 1 <= len(plan.steps) <= layers
    parse_create({"site_id": "s", "name": plan.name, "steps": plan.steps, "type": "generated"})


def test_the_plan_is_deterministic() -> None:
    assert plan_offline(request(8, "contact")) == plan_offline(request(8, "contact"))


def test_a_page_without_links_or_headings_still_gets_a_step() -> None:
    bare = PlanRequest(SITE, 5, "", snapshot_from_json({"url": SITE}))
    steps = plan_offline(bare).steps
    assert len(steps) == 1
    assert steps[0]["assertion"]["type"] == "exists"
    assert steps[0]["assertion"]["element"]["selector"] == "body"


def test_unusable_snapshot_parts_are_dropped() -> None:
    snap = snapshot_from_json({"url": SITE, "links": "nope", "forms": [1, {"fields": None}]})
    assert snap.links == () and len(snap.forms) == 1 and snap.forms[0].fields == ()


def test_the_generator_is_offline_unless_configured() -> None:
    planner = planner_from_env({})
    assert isinstance(planner, OfflinePlanner) and planner.name == "offline"
    assert isinstance(planner_from_env({"RUNLEDGER_CASE_GENERATOR": "OFFLINE"}), OfflinePlanner)
    with pytest.raises(ValueError, match="names no case generator"):
        planner_from_env({"RUNLEDGER_CASE_GENERATOR": "gpt"})
    plan = asyncio.run(planner.plan(request(3)))
    assert plan == plan_offline(request(3))
