import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from medlib import widgets  # noqa: E402
from medlib.data.synthetic import synthetic  # noqa: E402
from medlib.viz import data as vizdata  # noqa: E402


@pytest.mark.parametrize("task, channels", [("binary-class", 1), ("multi-class", 3),
                                            ("multi-label, binary-class", 1)])
def test_2d_figures_have_one_row_per_class(task, channels):
    d = synthetic(task, n=40, channels=channels)
    fig = vizdata.montage_by_class(d.train, n_per_class=4)
    assert len(fig.axes) == d.info.n_classes * 4
    balance = vizdata.class_balance(d).axes[0]
    assert balance.get_title().startswith("Synthetic")
    assert len(balance.patches) == 3 * d.info.n_classes  # a bar per class and split
    hist = vizdata.intensity_histograms(d.train).axes[0]
    assert len(hist.patches) == d.info.n_classes  # one step outline per class
    assert [t.get_text() for t in hist.get_legend().get_texts()] == list(d.info.labels)


def test_slice_grid_skips_empty_slices():
    d = synthetic("binary-class", n=4, dim=3, size=16)
    vol = d.train.images[0].clone()
    vol[:] = 0
    vol[0, 5:9, 5:9, 5:9] = 255
    fig = vizdata.slice_grid(vol, n=4)
    axial = [int(a.get_title()) for a in fig.axes[:4]]
    assert axial == list(np.linspace(5, 8, 4).round().astype(int))


def test_widgets_stay_off_when_headless(monkeypatch):
    monkeypatch.setenv("MEDLIB_HEADLESS", "1")
    assert widgets.interactive() is False
    assert widgets.slice_explorer(synthetic("binary-class", n=2, dim=3, size=8).train.images[0]) is None
