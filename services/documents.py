"""The PDFs and charts Parcours hands out (the savoir-être passport, a person's data, a convention), written
line by line with fpdf2 in Debian's DejaVu fonts (every French character: œ, ’, « »); without
them, in the PDF core font and its Latin-1 characters."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from pygal.style import Style

FONTS = Path("/usr/share/fonts/truetype/dejavu")
CORE = "Helvetica"


class Document:
    """One PDF: a title, then lines of text (headings are lines in bold, larger)."""

    def __init__(self, title: str) -> None:
        from fpdf import FPDF  # imported with the first PDF: a quarter of a second off every start

        self.pdf = FPDF()
        self.pdf.set_title(title)
        self.pdf.set_creator("Parcours")
        self.family = CORE
        if (FONTS / "DejaVuSans.ttf").exists():
            self.pdf.add_font("DejaVu", "", str(FONTS / "DejaVuSans.ttf"))
            self.pdf.add_font("DejaVu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
            self.family = "DejaVu"
        self.pdf.add_page()

    def line(self, text: str, size: int = 10, style: str = "", gap: float = 5) -> None:
        self.pdf.set_font(self.family, style, size)
        if self.family == CORE:  # the core font knows Latin-1 only
            text = text.replace("’", "'").replace("•", "-").encode("latin-1", "replace").decode("latin-1")
        self.pdf.multi_cell(self.pdf.epw, gap, text, new_x="LMARGIN", new_y="NEXT")

    def bytes(self) -> bytes:
        out = BytesIO()
        self.pdf.output(out)
        return out.getvalue()


def inline_svg(chart: Any) -> str:
    """A pygal chart as an inline SVG for a page: pygal writes its tooltips' configuration in a
    <script>, which the pages' Content-Security-Policy would refuse: it is left out."""
    tree = chart.render_tree()
    for parent in list(tree.iter()):
        for child in [c for c in parent if str(c.tag).endswith("script")]:
            parent.remove(child)
    return ElementTree.tostring(tree, encoding="unicode")


CHART_STYLE = Style(font_family="Marianne, Arial, sans-serif", background="transparent")
