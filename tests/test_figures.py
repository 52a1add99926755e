"""Every shipped figure, as a reader sees it: nothing drawn outside the canvas (a clipped title or
label), no legend over plotted data. Checked with matplotlib's own bounding boxes on the figures a
real run draws (each figure is inspected as it is saved, then saved as usual).

Runs: the default experiment (TINY, every analysis that applies to reaching) and the georgopoulos
preset (TINY), a sweep's compare plots, and a user's saved Keras model run as it is.
"""
from __future__ import annotations

import numpy as np
import pytest
from helpers import TINY, compose
from test_compare import sweep_store  # noqa: F401,F811 - the fixture, shared
from test_keras_file import REACH, reach_data, reach_model, tf  # noqa: F401,F811 - fixtures

from framework import plugin_host
from framework.pipeline import run
from framework.progress import Console

#: pixels of slack: antialiasing and text metrics round
SLACK = 2.0


def data_points(ax) -> np.ndarray:
    """Display coordinates of the data ``ax`` plots: line vertices, scatter offsets, bar tops."""
    from matplotlib.collections import PathCollection
    from matplotlib.patches import Rectangle

    pts = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if len(xy) and line.get_visible():
            pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and len(coll.get_offsets()):
            pts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets())))
    for patch in ax.patches:  # a bar: points up its middle, every 2 pixels
        if isinstance(patch, Rectangle) and patch.get_height() and patch.get_visible():
            box = patch.get_window_extent()
            ys = np.arange(box.y0, box.y1 + 1, 2.0)
            pts.append(np.column_stack([np.full(len(ys), box.x0 + box.width / 2), ys]))
    pts = [p[np.all(np.isfinite(p), axis=1)] for p in pts]
    return np.concatenate(pts) if pts else np.zeros((0, 2))


def outside(box, canvas) -> bool:
    """Whether ``box`` leaves ``canvas`` (display coordinates) by more than :data:`SLACK`."""
    return (box.x0 < canvas.x0 - SLACK or box.x1 > canvas.x1 + SLACK
            or box.y0 < canvas.y0 - SLACK or box.y1 > canvas.y1 + SLACK)


def off_canvas(fig, name: str, renderer) -> list[str]:
    """Each axes as drawn (title, labels, the tick labels in view, legend) and the figure's
    texts, where they leave the canvas."""
    canvas, out = fig.bbox, []
    for ax in fig.axes:
        if ax.get_visible() and outside(ax.get_tightbbox(renderer), canvas):
            box = ax.get_tightbbox(renderer)
            out.append(f"{name}: axes '{ax.get_title()[:40]}' drawn at x {box.x0:.0f}..{box.x1:.0f}"
                       f", y {box.y0:.0f}..{box.y1:.0f} on a {canvas.width:.0f}x"
                       f"{canvas.height:.0f} canvas")
    for text in {*fig.texts, *([fig._suptitle] if fig._suptitle else [])}:
        if text.get_visible() and text.get_text().strip() and \
                outside(text.get_window_extent(renderer), canvas):
            out.append(f"{name}: text {text.get_text()[:40]!r} leaves the canvas")
    return out


def legends_over_data(fig, name: str, renderer) -> list[str]:
    """Axes legends over their axes' data; a figure's own legend (a colour key for every panel)
    off the canvas or over any panel."""
    out = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        pts = data_points(ax)
        inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & \
            (pts[:, 1] < box.y1)
        if inside.any():
            out.append(f"{name}: legend of '{ax.get_title()[:40]}' covers {int(inside.sum())} "
                       "data points")
    for legend in fig.legends:
        box = legend.get_window_extent(renderer)
        if outside(box, fig.bbox):
            out.append(f"{name}: the figure's legend leaves the canvas")
        out += [f"{name}: the figure's legend covers the panel '{ax.get_title()[:40]}'"
                for ax in fig.axes
                if ax.get_visible() and box.overlaps(ax.get_window_extent(renderer))]
    return out


def names_undrawn(fig, name: str) -> list[str]:
    """A colour key names only what is drawn: a von Mises fit only beside a drawn one (green,
    dashed)."""
    said = [fig._suptitle.get_text() if fig._suptitle else "", *(t.get_text() for t in fig.texts),
            *(ax.get_title() for ax in fig.axes),
            *(t.get_text() for leg in fig.legends for t in leg.get_texts())]
    drawn = any(line.get_linestyle() == "--" and line.get_color() == "tab:green"
                for ax in fig.axes for line in ax.get_lines())
    if any("von Mises" in text for text in said) and not drawn:
        return [f"{name}: names a von Mises curve that is not drawn"]
    return []


def problems(fig, name: str) -> list[str]:
    """What a reader would see wrong in ``fig``."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return (off_canvas(fig, name, renderer) + legends_over_data(fig, name, renderer)
            + names_undrawn(fig, name))


@pytest.fixture
def inspected(monkeypatch):
    """Every figure saved during the test, checked as it is saved."""
    from matplotlib.figure import Figure

    found: list[str] = []
    names: list[str] = []
    save = Figure.savefig

    def checked(self, fname, *args, **kwargs):
        name = str(fname).rsplit("/", 1)[-1]
        names.append(name)
        if kwargs.get("dpi"):  # laid out as it will be saved ("best" legends move with dpi)
            self.set_dpi(kwargs["dpi"])
        found.extend(problems(self, name))
        return save(self, fname, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", checked)
    # drawn in this process, where the check sees them (a run draws them in forked workers)
    monkeypatch.setattr(plugin_host, "BACKGROUND", False)
    return names, found


@pytest.mark.parametrize("preset", [[], ["experiment=georgopoulos"]],
                         ids=["default", "georgopoulos"])
def test_every_figure_stays_on_its_canvas_with_its_legend_off_the_data(preset, store, inspected):
    names, found = inspected
    tiny = [o for o in TINY if o != "tracking.plots=false"]
    run(compose([*preset, *tiny, "tracking.log_model=false", f"tracking.uri={store}"]),
        console=Console(quiet=True))
    assert len(names) >= 5, names
    assert not found, "\n".join(found)


def test_a_sweeps_compare_plots_stay_on_their_canvas_with_legends_off_the_data(
        sweep_store, tmp_path, inspected):  # noqa: F811 - the imported fixture
    """tests/test_compare.py's sweep (neuron × n_steps, tuning tables): the per-parameter plot,
    the trade-off and the tuning overlay."""
    from framework.app import compare

    names, found = inspected
    uri, pid = sweep_store
    compare.compare(uri, parent=pid, out=tmp_path / "out", echo=False)
    assert {"tradeoff.png", "tuning_overlay.png"} <= set(names), names
    assert not found, "\n".join(found)


def test_a_loaded_models_figures_stay_on_their_canvas(reach_model, store, inspected):  # noqa: F811
    """A user's saved Keras model (tests/test_keras_file.py's), run as it is, every analysis that
    applies drawn."""
    names, found = inspected
    overrides = [o for o in REACH if o not in ("tracking.plots=false", "analysis=[firing]")]
    run(compose([*overrides, "model=keras_file", f"model.path={reach_model['paths']['keras']}",
                 "model.train=false", "neuron=relu", "tracking.log_model=false",
                 f"tracking.uri={store}"]), console=Console(quiet=True))
    assert len(names) >= 4, names
    assert not found, "\n".join(found)
