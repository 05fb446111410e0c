"""Segmentation (chapter 05): medlib's hand-written pieces vs MONAI, timed side by side.

- training step: medlib UNet vs monai.networks.nets.UNet with the same channels
  (width·2^k, num_res_units=2: strided convolutions and residual units, so a similar but
  not identical design; parameter counts are reported) on DRIVE patches (B, 1, 96, 96),
  forward + backward + AdamW;
- sliding-window inference on one full DRIVE image (584×565), window 96, overlap 0.25:
  medlib.data.segmentation.sliding_window vs monai.inferers.sliding_window_inference;
- metrics on the 20 DRIVE test masks (2nd observer vs 1st): Dice and HD95 by hand vs
  MONAI's DiceMetric / HausdorffDistanceMetric(percentile=95).

Both sides run in this one process, alternating, `--repeats` times; medians are reported,
with the ratio medlib / MONAI (below 1 = medlib faster). Results: bench/results/seg_speed.json.

    flock /tmp/medlib-cpu.lock python bench/seg_speed.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from medlib.cost import count_parameters  # noqa: E402
from medlib.data.segmentation import load_drive  # noqa: E402
from medlib.inference import sliding_window  # noqa: E402
from medlib.losses import bce_dice  # noqa: E402
from medlib.metrics import segmentation as M  # noqa: E402
from medlib.models.unet import UNet  # noqa: E402


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--data", default=None, help="data directory (default: $MEDLIB_DATA or <repo>/datasets)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.metrics import DiceMetric, HausdorffDistanceMetric
    from monai.networks.nets import UNet as MonaiUNet

    info = {"benchmark": "seg_speed", "machine": common.machine(), "args": vars(args), "results": {}}
    channels = tuple(args.width * 2**k for k in range(args.depth + 1))
    ours = UNet(1, 1, width=args.width, depth=args.depth)
    theirs = MonaiUNet(2, 1, 1, channels=channels, strides=(2,) * args.depth, num_res_units=2)
    x = torch.randn(args.batch, 1, 96, 96)
    y = (torch.rand(args.batch, 1, 96, 96) > 0.9).float()
    dicece = DiceCELoss(sigmoid=True)

    def step(model, loss_fn, opt):
        def run():
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return run

    steps = {
        "medlib": step(ours, bce_dice, torch.optim.AdamW(ours.parameters(), 1e-3)),
        "monai": step(theirs, dicece, torch.optim.AdamW(theirs.parameters(), 1e-3)),
    }
    for f in steps.values():  # warm-up
        f()
    t = {k: [] for k in steps}
    for _ in range(args.repeats):
        for k, f in steps.items():
            t[k] += timed(f, 1)
    px = args.batch * 96 * 96
    info["results"]["train_step"] = {
        "params": {"medlib": count_parameters(ours), "monai": count_parameters(theirs)},
        **{f"{k}_s": statistics.median(v) for k, v in t.items()},
        **{f"{k}_kpx_per_s": px / statistics.median(v) / 1e3 for k, v in t.items()},
        "ratio_medlib_over_monai": statistics.median(t["medlib"]) / statistics.median(t["monai"]),
    }

    data = load_drive(args.data)
    test = data.test.open("speed benchmark: timing only, no model is trained or chosen")
    img = data.normalize(test.images[:1])  # (1, 1, 584, 565)
    ours.eval()
    with torch.no_grad():
        sw = {
            "medlib": lambda: sliding_window(ours, img, 96, 0.25, batch_size=8),
            "monai": lambda: sliding_window_inference(img, (96, 96), 8, ours, overlap=0.25, mode="constant"),
        }
        assert torch.allclose(sw["medlib"](), sw["monai"](), atol=1e-4)
        t = {k: [] for k in sw}
        for _ in range(args.repeats):
            for k, f in sw.items():
                t[k] += timed(f, 1)
    info["results"]["sliding_window"] = {
        **{f"{k}_s": statistics.median(v) for k, v in t.items()},
        "ratio_medlib_over_monai": statistics.median(t["medlib"]) / statistics.median(t["monai"]),
    }

    p, g = test.observer.bool(), test.masks.bool()
    onehot = lambda m: torch.stack([~m, m], 1).float()  # noqa: E731
    met = {
        "dice_medlib": lambda: M.dice(p, g),
        "dice_monai": lambda: DiceMetric(include_background=False, reduction="none")(onehot(p), onehot(g)),
        "hd95_medlib": lambda: M.hd95(p, g),
        "hd95_monai": lambda: HausdorffDistanceMetric(include_background=False, percentile=95, reduction="none")(
            onehot(p), onehot(g)
        ),
    }
    assert torch.allclose(met["hd95_medlib"]().float(), met["hd95_monai"]()[:, 0], atol=1e-3)
    t = {k: [] for k in met}
    for _ in range(max(args.repeats // 2, 1)):
        for k, f in met.items():
            t[k] += timed(f, 1)
    res = {f"{k}_s": statistics.median(v) for k, v in t.items()}
    for m in ("dice", "hd95"):
        res[f"{m}_ratio_medlib_over_monai"] = res[f"{m}_medlib_s"] / res[f"{m}_monai_s"]
    info["results"]["metrics_20_drive_masks"] = res

    path = common.write("seg_speed", common.finish(info))
    import json

    print(json.dumps(info["results"], indent=1))
    print("written", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
