"""Every route a colour of its own that reads as enabled, with text contrast WCAG AA everywhere it is shown; and the
favicon answers at /favicon.ico, where browsers ask for it whatever the page links.

The colours are read from the stylesheets themselves, so a change that breaks the contrast fails here."""

from __future__ import annotations

import colorsys
import re

import pytest
from flask.testing import FlaskClient

from core.routes import ROUTES
from tests.support.paths import ROOT

STATIC = ROOT / "api" / "static"
AGENT_CSS = (STATIC / "agent.css").read_text(encoding="utf-8")
AA = 4.5  # WCAG 2.x, normal-size text
# The light backgrounds route names, links and status text sit on: white cards, the page (--bg), the rows' and
# route buttons' hover tints, the table headers, and a queue row past its SLA (and its hover).
LIGHT_BACKGROUNDS = ("#ffffff", "#f4f6f8", "#f7faff", "#f4f7fb", "#fafbfc", "#fdecea", "#fde8e5")


def _variable(name: str) -> str:
    match = re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", AGENT_CSS)
    assert match, f"--{name} is not a #rrggbb colour in agent.css"
    return match.group(1)


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    light, dark = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_contrast_formula_matches_known_pairs() -> None:
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # the classic just-below-AA grey


@pytest.mark.parametrize("route", ROUTES)
def test_each_route_text_keeps_aa_contrast_on_every_light_background(route: str) -> None:
    colour = _variable(route.lower())
    for background in LIGHT_BACKGROUNDS:
        assert contrast(colour, background) >= AA, (route, colour, background)


@pytest.mark.parametrize("route", ROUTES)
def test_each_route_is_styled_with_its_own_colour_in_the_queue_and_on_the_buttons(route: str) -> None:
    name = route.lower()
    assert re.search(rf"\.route-{name}\s*{{\s*color:\s*var\(--{name}\)", AGENT_CSS)
    assert re.search(rf"\.route-button\.route-{name}\s*{{\s*color:\s*var\(--{name}\)", AGENT_CSS)


def test_the_routes_are_saturated_and_far_apart_in_hue() -> None:
    """Grey reads as disabled; two close hues read as one team."""
    hues = {}
    for route in ROUTES:
        colour = _variable(route.lower())
        hue, _lightness, saturation = colorsys.rgb_to_hls(*(int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)))
        assert saturation > 0.35, f"{route} ({colour}) looks like a disabled grey"
        hues[route] = hue
    for a in ROUTES:
        for b in ROUTES:
            if a < b:
                gap = abs(hues[a] - hues[b])
                assert min(gap, 1 - gap) > 0.08, f"{a} and {b} look alike"


def test_muted_and_status_text_and_the_buttons_keep_aa() -> None:
    for name in ("muted", "ok", "bad", "ink"):
        for background in LIGHT_BACKGROUNDS:
            assert contrast(_variable(name), background) >= AA, (name, background)
    assert contrast("#ffffff", _variable("ok")) >= AA  # button.primary: white text on --ok
    assert contrast(_variable("ok"), "#e9f7ef") >= AA  # the champion and routed badges
    customer_button = re.search(r"^button \{[^}]*background: (#[0-9a-fA-F]{6})",
                                (STATIC / "style.css").read_text(encoding="utf-8"), re.MULTILINE)
    assert customer_button, "the web form's button has no #rrggbb background"
    assert contrast("#ffffff", customer_button.group(1)) >= AA


def test_the_favicon_answers_at_favicon_ico_as_the_linked_svg(client: FlaskClient) -> None:
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.data == (STATIC / "favicon.svg").read_bytes()
    assert response.cache_control.max_age and response.cache_control.max_age > 0
    link = '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">'
    assert link in client.get("/agent/login").get_data(as_text=True)  # the agents' base template
    assert link in client.get("/?lang=en").get_data(as_text=True)  # the customers' base template
