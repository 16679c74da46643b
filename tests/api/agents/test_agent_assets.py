"""The agents' static look: a favicon (served as SVG, linked from both base templates) and an "Other" route that
is a colour of its own, not the grey of disabled or muted things."""

from __future__ import annotations

import colorsys
import re

from flask.testing import FlaskClient

from tests.support.paths import ROOT

CSS = ROOT / "api" / "static" / "agent.css"


def _colour(name: str) -> tuple[float, float, float]:
    """(hue, lightness, saturation) of a `--name: #rrggbb` custom property in agent.css."""
    match = re.search(rf"--{name}:\s*#([0-9a-fA-F]{{6}})", CSS.read_text(encoding="utf-8"))
    assert match, name
    r, g, b = (int(match.group(1)[i:i + 2], 16) / 255 for i in (0, 2, 4))
    return colorsys.rgb_to_hls(r, g, b)


def test_other_is_a_colour_of_its_own_not_a_disabled_grey() -> None:
    hue, _lightness, saturation = _colour("other")
    assert saturation > 0.35, "Other looks disabled: a grey"
    for name in ("account", "payment"):
        other_hue = _colour(name)[0]
        assert min(abs(hue - other_hue), 1 - abs(hue - other_hue)) > 0.08, f"Other looks like {name}"


def test_the_favicon_is_served_as_svg_and_linked_from_both_base_templates(client: FlaskClient) -> None:
    response = client.get("/static/favicon.svg")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).lstrip().startswith("<svg")
    link = '<link rel="icon" type="image/svg+xml" href="/static/favicon.svg">'
    assert link in client.get("/agent/login").get_data(as_text=True)  # the agents' base template
    assert link in client.get("/").get_data(as_text=True)  # the customers' (the web form)
