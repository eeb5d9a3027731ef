"""Report charts drawn by matplotlib as inline SVG (text as paths: the PDF needs no extra font for them)."""

from __future__ import annotations

import base64
import io
import itertools
import re
import threading
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # no display on a server
import matplotlib.pyplot as plt
from matplotlib import font_manager

# pyplot keeps global state: one chart at a time per process.
_LOCK = threading.Lock()
_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "WenQuanYi Micro Hei", "Noto Serif CJK SC")
COLOURS = {"bar": "#2f6fb0", "warn": "#c0392b", "ok": "#27ae60"}


def _font_family() -> list[str]:
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in _CJK_FONTS if name in installed] + ["DejaVu Sans"]


_FAMILY = _font_family()


_SERIAL = itertools.count(1)
_ID_REF = re.compile(r'(id="|href="#|url\(#)')


def _image(fig, fmt: str) -> str:
    """The chart as inline SVG (screens) or as an <img> of a PNG (print: WeasyPrint lays out SVG glyph paths
    slowly, and a 150 dpi picture prints as sharp)."""
    if fmt == "png":
        raw = io.BytesIO()
        fig.savefig(raw, format="png", dpi=150, bbox_inches="tight")
        plt.close(fig)
        return f'<img alt="" src="data:image/png;base64,{base64.b64encode(raw.getvalue()).decode()}">'
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prologue: the SVG is inlined into HTML
    # matplotlib names its elements the same in every chart (xtick_1, the font glyphs…); several charts in
    # one page need distinct ids or their references cross.
    prefix = f"c{next(_SERIAL)}-"
    return _ID_REF.sub(lambda m: m.group(1) + prefix, text)


def bars(title: str, labels: Sequence[str], values: Sequence[float], *, percent: bool = False,
         horizontal: bool = False, threshold: float | None = None, fmt: str = "svg") -> str:
    """A bar chart as an SVG string. `threshold`: bars below it are drawn in the warning colour."""
    with _LOCK, plt.rc_context({"font.family": _FAMILY, "svg.fonttype": "path", "font.size": 8,
                                "axes.unicode_minus": False}):
        height = max(1.4, 0.2 * len(labels) + 0.6) if horizontal else 2.4
        fig, ax = plt.subplots(figsize=(7.0, height))
        shown = [v * 100 for v in values] if percent else list(values)
        colours = [COLOURS["warn"] if threshold is not None and v < threshold else COLOURS["bar"] for v in values]
        positions = range(len(labels))
        if horizontal:
            ax.barh(positions, shown, color=colours)
            ax.set_yticks(list(positions), labels)
            ax.invert_yaxis()
            if percent:
                ax.set_xlim(0, 100)
        else:
            ax.bar(positions, shown, color=colours)
            ax.set_xticks(list(positions), labels)
            if percent:
                ax.set_ylim(0, 100)
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        return _image(fig, fmt)


def lines(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], *,
          percent: bool = False, fmt: str = "svg") -> str:
    """Several series over the same x labels (trends in the review)."""
    with _LOCK, plt.rc_context({"font.family": _FAMILY, "svg.fonttype": "path", "font.size": 8,
                                "axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(7.0, 2.6))
        for name, values in series.items():
            ys = [float("nan") if v is None else (v * 100 if percent else v) for v in values]
            ax.plot(range(len(labels)), ys, marker=".", label=name)
        step = max(1, len(labels) // 10)
        ax.set_xticks(list(range(0, len(labels), step)), [labels[i] for i in range(0, len(labels), step)])
        if percent:
            ax.set_ylim(0, 100)
        ax.set_title(title)
        if len(series) > 1:
            ax.legend(fontsize=7, ncols=min(4, len(series)))
        ax.spines[["top", "right"]].set_visible(False)
        return _image(fig, fmt)
