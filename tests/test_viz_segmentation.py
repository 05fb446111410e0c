import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from medlib.data.segmentation import SegSplit  # noqa: E402
from medlib.viz import segmentation as vs  # noqa: E402


def _split(fov: bool = False):
    images = torch.full((2, 1, 8, 8), 128, dtype=torch.uint8)
    masks = torch.zeros(2, 8, 8, dtype=torch.uint8)
    masks[:, :4] = 1  # top half is foreground
    f = torch.ones(2, 8, 8, dtype=torch.uint8) if fov else None
    if fov:
        f[:, :, 6:] = 0  # two right-most columns outside the field of view
    return SegSplit(images, masks, ["a.png", "b.png"], fov=f)


def test_error_overlay_colours_tp_fp_fn_and_dims_outside_fov():
    s = _split(fov=True)
    pred = torch.zeros(8, 8, dtype=torch.bool)
    pred[2:6, :] = True  # rows 2-3 TP, rows 4-5 FP, rows 0-1 FN
    rgb = vs.error_overlay(s.images[0], pred, s.masks[0], s.fov[0], alpha=1.0)
    assert rgb.shape == (8, 8, 3)
    np.testing.assert_allclose(rgb[2, 0], vs.TP_COLOR)
    np.testing.assert_allclose(rgb[4, 0], vs.FP_COLOR)
    np.testing.assert_allclose(rgb[0, 0], vs.FN_COLOR)
    grey = 128 / 255
    np.testing.assert_allclose(rgb[7, 0], [grey] * 3, rtol=1e-6)  # TN inside the FOV: the image
    np.testing.assert_allclose(rgb[2, 7], [grey * 0.35] * 3, rtol=1e-6)  # outside: dimmed, no colour


def test_overlays_distributions_and_static_explorer(monkeypatch):
    monkeypatch.setenv("MEDLIB_HEADLESS", "1")
    s = _split()
    probs = torch.rand(2, 8, 8)
    fig = vs.show_overlays(s, probs, 0.5, idx=[0, 1], dice=torch.tensor([0.5, 0.7]))
    assert len(fig.axes) >= 6
    per = {"unet": {"dice": torch.rand(5), "iou": torch.rand(5), "sens": torch.rand(5),
                    "hd95": torch.rand(5) * 10}}
    dist = vs.show_distributions(per)
    assert [a.get_title().split(" ")[0] for a in dist.axes] == ["dice", "iou", "sens", "hd95"]
    assert all(len(a.collections[0].get_offsets()) == 5 for a in dist.axes)  # one dot per image
    out = vs.threshold_explorer(s, probs, i=1, threshold=0.4)
    assert isinstance(out, matplotlib.figure.Figure)  # headless: a static figure, no widget
