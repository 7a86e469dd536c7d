"""One style for every figure the kit saves: sized for the printed page, readable in greyscale.

Each figure is made at the size it is printed at: a journal column (3.5 in, :data:`COLUMN`) or the text width (7 in,
:data:`TEXT`), at most :data:`MAX_HEIGHT` tall, with every piece of text at least :data:`MIN_POINTS` pt at that size
(most journals ask for 6-8 pt; 7 pt is the common floor). Maps use ``magma``, whose lightness rises monotonically, so
a map keeps its order of values in greyscale print; series are told apart by marker and line style, not hue.
Tables shown to a reader (a notebook's output, the run's report) go through :func:`format_table` / :func:`table_view`:
each number with the digits that carry meaning, not the six of the CSV files.

Figure functions are decorated with :func:`paper_style` (the rc settings below apply to everything they draw) and
make their figure with :func:`paper_figure`; maps get a :func:`colorbar` and lesion masks an :func:`outline`; every axis
that plots an accuracy says the decision rule it counts at. :func:`print_problems` checks a finished figure:
``RunContext.save_figure`` logs its findings as a warning (the run's log and the notebook's output show them), and the
tests assert that every figure the notebooks save has none.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.text import Text
from matplotlib.textpath import text_to_path

COLUMN = 3.5
TEXT = 7.0
WIDTHS = {"column": COLUMN, "text": TEXT}
MAX_HEIGHT = 9.0
MIN_POINTS = 7.0
MAP_CMAP = "magma"
RC = {
    "font.size": 8.0,
    "axes.titlesize": 8.0,
    "axes.labelsize": 8.0,
    "xtick.labelsize": 7.0,
    "ytick.labelsize": 7.0,
    "legend.fontsize": 7.0,
    "legend.title_fontsize": 7.0,
    "figure.titlesize": 8.5,
    "figure.labelsize": 8.0,
    "lines.linewidth": 1.1,
    "lines.markersize": 4.0,
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "image.cmap": MAP_CMAP,
    "pdf.fonttype": 42,
}

#: Series colours: Okabe and Ito's palette, told apart by readers with a colour-vision deficiency (yellow left out: it
#: vanishes on white).
SERIES_COLOURS = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7")
#: Line styles that stay distinct in print: solid, dashed, dotted, dash-dot, long dash, dash-dot-dot, sparse dots,
#: short dash (no two of them a near-copy of each other, as ``:`` and ``(0, (1, 2))`` are).
SERIES_DASHES: tuple[Any, ...] = (
    "-",
    (0, (4, 1.5)),
    (0, (1, 1)),
    (0, (5, 1.5, 1, 1.5)),
    (0, (9, 2.5)),
    (0, (5, 1.5, 1, 1.5, 1, 1.5)),
    (0, (1, 3)),
    (0, (2, 1)),
)
SERIES_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
#: What a smoke run's figures carry, across their middle (:func:`mark_smoke`).
SMOKE_MARK = "SMOKE RUN: checks the machinery, not a result"

F = TypeVar("F", bound=Callable[..., Any])


def series_style(i: int) -> dict[str, Any]:
    """The ``i``-th series' colour, line style and marker: the three cycle with periods 7, 8 and 11, so every series of
    a figure differs from every other in at least two of them up to 56 series, and in all three up to 7.

    Returns:
        ``color``, ``linestyle`` and ``marker`` keyword arguments for ``Axes.plot``.
    """
    return {
        "color": SERIES_COLOURS[i % len(SERIES_COLOURS)],
        "linestyle": SERIES_DASHES[i % len(SERIES_DASHES)],
        "marker": SERIES_MARKERS[i % len(SERIES_MARKERS)],
    }


def mark_smoke(fig: Figure) -> None:
    """Write :data:`SMOKE_MARK` across ``fig`` (large, light, diagonal, above everything), so that a smoke run's figure
    cannot be taken for a result when it is shown on its own."""
    width, _ = fig.get_size_inches()
    points = max(MIN_POINTS, min(14.0, 0.8 * width / (text_inches(SMOKE_MARK, 10.0) / 10.0 * np.cos(np.radians(15)))))
    mark = fig.text(
        0.5,
        0.5,
        SMOKE_MARK,
        ha="center",
        va="center",
        rotation=15,
        fontsize=points,
        color="#b00020",
        alpha=0.4,
        fontweight="bold",
        zorder=10,
        gid="smoke-mark",
    )
    mark.set_in_layout(False)


def paper_style(func: F) -> F:
    """Decorator: run a figure function with the kit's rc settings (:data:`RC`).

    Returns:
        The wrapped function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with mpl.rc_context(RC):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def paper_figure(width: str, height: float, nrows: int = 1, ncols: int = 1, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots`` at a printed size, with constrained layout (which keeps legends and colourbars inside).

    Args:
        width: ``"column"`` (3.5 in) or ``"text"`` (7 in).
        height: inches, capped at :data:`MAX_HEIGHT`.
        nrows, ncols, kwargs: as for :func:`matplotlib.pyplot.subplots`.

    Returns:
        The figure and its axes, as ``plt.subplots`` returns them.
    """
    if width not in WIDTHS:
        raise ValueError(f"width is {width!r}; expected one of {sorted(WIDTHS)}")
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(nrows, ncols, figsize=(WIDTHS[width], min(height, MAX_HEIGHT)), **kwargs)


def colorbar(fig: Figure, image: Any, axes: Any, label: str) -> Any:
    """A slim colourbar for ``image`` beside ``axes`` (one axes or several sharing the scale), labelled ``label``.

    Returns:
        The colourbar.
    """
    bar = fig.colorbar(image, ax=axes, fraction=0.05, pad=0.02, aspect=30)
    bar.set_label(label)
    bar.ax.tick_params(labelsize=RC["xtick.labelsize"])
    return bar


def text_inches(text: str, points: float) -> float:
    """Width of one line of ``text`` at ``points`` pt in the kit's font.

    Returns:
        The width in inches, as matplotlib measures the line.
    """
    with mpl.rc_context(RC):
        width, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=points), ismath=False)
    return width / 72.0


def wrap(text: str, inches: float, points: float = RC["axes.titlesize"]) -> str:
    """``text`` with each of its lines wrapped to lines no wider than ``inches`` at ``points`` pt: after a space,
    hyphen or underscore where one fits, inside a word that is wider than the whole line.

    Returns:
        The wrapped text (lines joined by newlines).
    """
    out: list[str] = []
    for line in text.split("\n"):
        current = ""
        for piece in re.split(r"(?<=[ _-])", line):
            if text_inches((current + piece).rstrip(), points) <= inches:
                current += piece
                continue
            if current:
                out.append(current.rstrip())
            current = ""
            for char in piece:  # a piece wider than the line is broken where it reaches the edge
                if current and text_inches(current + char, points) > inches:
                    out.append(current)
                    current = ""
                current += char
        out.append(current.rstrip())
    return "\n".join(out)


def row_label(ax: Any, text: str, inches: float = 0.9) -> None:
    """Label a row of image panels left of its first panel ``ax``: horizontal and wrapped to ``inches``, so that a
    long image id is never taller than its row (a rotated label would spill above and below it)."""
    size = RC["axes.labelsize"]
    ax.set_ylabel(wrap(text, inches, size), rotation=0, ha="right", va="center", fontsize=size)


def outline(ax: Any, mask: Any) -> None:
    """Draw the outline of a (H, W) lesion mask on ``ax``: a wide black line under a narrow white one, visible on dark
    and light images and maps alike (and in greyscale); nothing for an empty mask."""
    mask = np.asarray(mask, dtype=float)
    if mask.any():
        ax.contour(mask, levels=[0.5], colors="black", linewidths=2.0)
        ax.contour(mask, levels=[0.5], colors="white", linewidths=0.8)


def print_problems(fig: Figure, tolerance: float = 0.02) -> list[str]:
    """What keeps ``fig`` from printing as it is: a width that is neither a column nor the text width, a height over
    :data:`MAX_HEIGHT`, drawn content that spills over the figure (``bbox_inches="tight"`` would then save it larger),
    and every visible text under :data:`MIN_POINTS` pt.

    Returns:
        One line per problem; empty when the figure prints at its size.
    """
    width, height = fig.get_size_inches()
    problems = []
    if not any(abs(width - w) <= tolerance for w in WIDTHS.values()):
        problems.append(f"width {width:.2f} in; expected {COLUMN} (column) or {TEXT} (text width)")
    if height > MAX_HEIGHT + tolerance:
        problems.append(f"height {height:.2f} in; at most {MAX_HEIGHT}")
    fig.canvas.draw()
    box = fig.get_tightbbox(fig.canvas.get_renderer())
    if box.width > width + 0.05 or box.height > height + 0.05:
        problems.append(
            f"drawn content {box.width:.2f} x {box.height:.2f} in overflows the {width:.2f} x {height:.2f} in figure"
        )
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_POINTS - 1e-6:
            problems.append(f"text {text.get_text()[:30]!r} at {text.get_fontsize():.1f} pt; at least {MIN_POINTS}")
    return problems


def _column_text(values: "pd.Series", digits: int) -> Callable[[Any], str]:
    """How one column's numbers are written: whole numbers as integers, p-values to two significant digits, a column
    within [-1, 1] (AUCs, accuracies, rates, correlations) to ``digits`` decimals, any other to ``digits``
    significant digits (thousands without decimals)."""
    finite = pd.to_numeric(values, errors="coerce").dropna()
    finite = finite[np.isfinite(finite)]
    name = str(values.name).lower()
    if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 1e15:
        return lambda v: f"{int(v):d}"
    if name.startswith("p_") or name.endswith("p_value") or name in ("p", "pvalue"):
        return lambda v: f"{v:.2g}"
    if len(finite) and finite.abs().max() <= 1:
        return lambda v: f"{v:.{digits}f}"
    return lambda v: f"{v:,.0f}" if abs(v) >= 10**digits else f"{v:.{digits}g}"


def format_table(table: "pd.DataFrame", digits: int = 3) -> "pd.DataFrame":
    """``table`` as text for a reader: each float column written with the digits that carry meaning
    (:func:`_column_text`), missing values blank, booleans as yes / no, and a default 0, 1, 2, ... index dropped.

    Returns:
        A table of strings with the same columns (and the same index unless it was the default one).
    """
    out = table.copy()
    for column in out.columns:
        values = out[column]
        # a boolean column with a missing value reads back from CSV as objects (True, False, NaN)
        present = values.dropna() if values.dtype == object else ()
        flags = len(present) > 0 and all(isinstance(v, (bool, np.bool_)) for v in present)
        if pd.api.types.is_bool_dtype(values) or flags:
            out[column] = values.map(lambda v: "" if pd.isna(v) else "yes" if v else "no")
        elif pd.api.types.is_float_dtype(values):
            text = _column_text(values, digits)
            out[column] = values.map(lambda v, t=text: "" if pd.isna(v) else f"{v}" if np.isinf(v) else t(v))
        else:
            out[column] = values.map(lambda v: "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    if isinstance(out.index, pd.RangeIndex) and out.index.name is None:
        out = out.reset_index(drop=True)
    return out


def table_view(table: "pd.DataFrame", digits: int = 3) -> Any:
    """How a notebook shows ``table``: :func:`format_table`'s text, with a default 0, 1, 2, ... index hidden.

    Returns:
        A pandas ``Styler`` (Jupyter and nbconvert render it as an HTML table).
    """
    text = format_table(table, digits)
    styler = text.style
    if isinstance(table.index, pd.RangeIndex) and table.index.name is None:
        styler = styler.hide(axis="index")
    return styler
