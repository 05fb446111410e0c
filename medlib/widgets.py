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


def slice_explorer(volume, title: str = ""):
    """A slider over the axial slices of a (1, D, H, W) uint8 volume, with an axis selector.
    Returns the widget, or None when not interactive."""
    if not interactive():
        return None
    import ipywidgets as w
    import matplotlib.pyplot as plt

    v = volume[0].numpy()

    def show(axis: str, index: int):
        img = {"axial": v[index], "coronal": v[:, index], "sagittal": v[:, :, index]}[axis]
        fig, ax = plt.subplots(figsize=(3, 3))
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{title} {axis} slice {index}", fontsize=9)
        ax.axis("off")
        plt.show()

    axis = w.ToggleButtons(options=["axial", "coronal", "sagittal"], description="view")
    index = w.IntSlider(value=v.shape[0] // 2, min=0, max=v.shape[0] - 1, description="slice")
    return w.interactive(show, axis=axis, index=index)
