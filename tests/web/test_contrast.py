"""Colour contrast of the stylesheet and the charts, computed as WCAG 2 defines it.

Text needs 4.5:1 against every background it sits on (1.4.3); the focus ring
and the chart bars, which carry meaning without being text, need 3:1 (1.4.11).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from advisor import plots

CSS = (Path(__file__).resolve().parents[2] / "static" / "css" / "app.css").read_text()
WHITE = "#ffffff"


def css_colours() -> dict[str, str]:
    root = re.search(r":root\s*\{(.*?)\}", CSS, re.S)
    assert root is not None
    return dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})\s*;", root.group(1)))


def luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_formula_matches_known_values() -> None:
    assert contrast("#000000", WHITE) == pytest.approx(21.0)
    assert contrast("#767676", WHITE) == pytest.approx(4.54, abs=0.01)


C = css_colours()
# Backgrounds text is put on: the page, panels, the selected gallery card and
# choice (#eaf1fa), the winner box (#f5f9fe), warnings and errors.
BACKGROUNDS = [C["bg"], C["soft"], "#eaf1fa", "#f5f9fe", C["warn-bg"], C["err-bg"]]


@pytest.mark.parametrize("text", ["fg", "muted", "accent", "accent-dark", "good", "bad"])
@pytest.mark.parametrize("background", BACKGROUNDS)
def test_text_colours_meet_aa_on_every_background(text: str, background: str) -> None:
    assert contrast(C[text], background) >= 4.5, (text, background)


def test_header_text_meets_aa_on_the_dark_header() -> None:
    assert contrast(WHITE, C["fg"]) >= 4.5
    assert contrast("#c8ced6", C["fg"]) >= 4.5  # the muted user name in the header
    assert contrast(WHITE, C["accent"]) >= 4.5  # the primary button


@pytest.mark.parametrize("background", [*BACKGROUNDS, "#1b1f24"])
def test_the_focus_ring_is_visible_on_light_panels_and_the_dark_header(background: str) -> None:
    assert re.search(r":focus-visible\s*\{[^}]*outline:[^;]*var\(--focus\)", CSS)
    assert contrast(C["focus"], background) >= 3.0, background


def test_chart_bars_stand_out_from_the_page() -> None:
    for colour in (plots._WINNER, plots._OTHER):
        assert contrast(colour, WHITE) >= 3.0, colour
