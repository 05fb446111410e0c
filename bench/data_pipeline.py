"""Data pipeline: seconds per epoch of medlib's in-memory TensorLoader vs the official
MedMNIST pipeline (medmnist.<Dataset>(download=False) + torchvision ToTensor + Normalize(0.5,
0.5) + torch DataLoader, same batch size), data only and with a SimpleCNN training step.
Both sides run in this one process, alternating, `--repeats` times; the median is reported.
Results: bench/results/data_pipeline.json.

    flock /tmp/medlib-cpu.lock python bench/data_pipeline.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

from medlib import paths  # noqa: E402
from medlib.data.batches import TensorLoader  # noqa: E402
from medlib.data.medmnist import load  # noqa: E402
from medlib.models.cnn import SimpleCNN  # noqa: E402


def official_loader(flag: str, batch_size: int, num_workers: int):
    import medmnist
    import torchvision.transforms as T
    from torch.utils.data import DataLoader

    cls = getattr(medmnist, medmnist.INFO[flag]["python_class"])
    tf = T.Compose([T.ToTensor(), T.Normalize(mean=[0.5], std=[0.5])])
    ds = cls(split="train", transform=tf, download=False, root=str(paths.data_dir() / "medmnist"))
    return DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers)


def epoch_seconds(loader, step=None) -> float:
    t0 = time.perf_counter()
    for x, y in loader:
        if y.ndim == 2:  # official labels (B, 1)
            y = y[:, 0].long()
        if step is not None:
            step(x, y)
    return time.perf_counter() - t0


def make_step(in_channels: int, n_classes: int):
    torch.manual_seed(0)
    model = SimpleCNN(in_channels, n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="pneumoniamnist")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--num-workers", type=int, default=0, help="official DataLoader workers")
    ap.add_argument("--name", default="data_pipeline")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"bench": "data_pipeline", "machine": common.machine(), "args": vars(args)}

    data = load(args.dataset, 28)
    ours = TensorLoader(data.train, args.batch_size, shuffle=True)
    official = official_loader(args.dataset, args.batch_size, args.num_workers)
    c, k = data.info.n_channels, data.info.n_classes
    times = {"official_data": [], "medlib_data": [], "official_train": [], "medlib_train": []}
    for _ in range(args.repeats):
        times["official_data"].append(epoch_seconds(official))
        times["medlib_data"].append(epoch_seconds(ours))
        times["official_train"].append(epoch_seconds(official, make_step(c, k)))
        times["medlib_train"].append(epoch_seconds(ours, make_step(c, k)))
    med = {key: statistics.median(v) for key, v in times.items()}
    out.update({
        "n_train": len(data.train), "seconds_per_epoch": times, "median_seconds_per_epoch": med,
        "speedup_data_only": med["official_data"] / med["medlib_data"],
        "speedup_with_simplecnn_step": med["official_train"] / med["medlib_train"],
    })
    common.finish(out["machine"])
    print(json.dumps({k: v for k, v in out.items() if k != "seconds_per_epoch"}, indent=1))
    print("wrote", common.write(args.name, out))


if __name__ == "__main__":
    main()
