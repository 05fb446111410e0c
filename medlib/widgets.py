"""ipywidgets explorers that degrade to nothing when no one is watching.

Under papermill or nbval (no frontend) or with MEDLIB_HEADLESS set, `interactive()` is
False and chapters show their static figures only. Explained in chapter 00.
"""

from __future__ import annotations

import os


def interactive() -> bool:
    """True only in a live Jupyter kernel that is not a headless batch run."""
    if os.environ.get("MEDLIB_HEADLESS") or os.environ.get("MEDLIB_RUN_DIR"):
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def live_figure(draw, initial: dict, make_controls):
    """A figure redrawn by controls, safe headless. `draw(**values)` returns a Figure;
    `make_controls(ipywidgets)` returns {name: widget} whose values `draw` takes.

    Headless: the figure at `initial` is shown and returned. Live: the figure is displayed with
    a display id and replaced in place whenever a control changes (no Output widget has to
    capture anything while a notebook runs unattended); the controls are returned."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig = draw(**initial)
    if not interactive():
        plt.show()
        return fig
    import ipywidgets as w

    plt.close(fig)
    handle = display(fig, display_id=True)
    controls = make_controls(w)

    def update(_change):
        new = draw(**{k: c.value for k, c in controls.items()})
        handle.update(new)
        plt.close(new)

    for c in controls.values():
        c.observe(update, names="value")
    box = w.HBox(list(controls.values()))
    display(box)
    return box


AXES = ("axis 0", "axis 1", "axis 2")  # MedMNIST 3D does not document which is axial/coronal/sagittal


def slice_explorer(volumes, title: str = ""):
    """Slices of one or more (1, D, H, W) uint8 volumes: a volume selector ({name: volume}),
    the axis to slice along and a slider over the slices. Returns the widget, or None when
    not interactive (papermill, nbval, MEDLIB_HEADLESS)."""
    if not interactive():
        return None
    import ipywidgets as w
    import matplotlib.pyplot as plt
    import numpy as np

    vols = {k: v[0].numpy() for k, v in (volumes.items() if isinstance(volumes, dict) else [(title or "volume", volumes)])}
    first = next(iter(vols.values()))
    which = w.Dropdown(options=list(vols), description="volume")
    axis = w.ToggleButtons(options=list(AXES), description="slice along")
    index = w.IntSlider(value=first.shape[0] // 2, min=0, max=first.shape[0] - 1, description="slice")

    def fit_slider(_change=None):  # a new volume or axis: the slider spans its slices
        n = vols[which.value].shape[AXES.index(axis.value)]
        index.max, index.value = n - 1, min(index.value, n - 1)

    which.observe(fit_slider, names="value")
    axis.observe(fit_slider, names="value")

    def show(name: str, along: str, i: int):
        v = vols[name]
        a = AXES.index(along)
        img = np.take(v, min(i, v.shape[a] - 1), axis=a)
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{name}: {along}, slice {i}", fontsize=9)
        ax.axis("off")
        plt.show()

    return w.interactive(show, name=which, along=axis, i=index)
