"""One style for every figure the kit saves: sized for the printed page, readable in greyscale.

Each figure is made at the size it is printed at: a journal column (3.5 in, :data:`COLUMN`) or the text width (7 in,
:data:`TEXT`), at most :data:`MAX_HEIGHT` tall, with every piece of text at least :data:`MIN_POINTS` pt at that size
(most journals ask for 6-8 pt; 7 pt is the common floor). Maps use ``magma``, whose lightness rises monotonically, so
a map keeps its order of values in greyscale print; series are told apart by marker and line style, not hue.

Figure functions are decorated with :func:`paper_style` (the rc settings below apply to everything they draw) and
make their figure with :func:`paper_figure`; :func:`print_problems` checks a finished figure (``RunContext.save_figure``
warns with its findings, and the tests assert there are none).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import matplotlib as mpl
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.text import Text

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

F = TypeVar("F", bound=Callable[..., Any])


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
        problems.append(f"drawn content {box.width:.2f} x {box.height:.2f} in overflows the {width:.2f} x {height:.2f} in figure")
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_POINTS - 1e-6:
            problems.append(f"text {text.get_text()[:30]!r} at {text.get_fontsize():.1f} pt; at least {MIN_POINTS}")
    return problems
