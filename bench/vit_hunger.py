"""Chapter 07's data-hunger curve over the recorded seeds: test AUC of the ViT and chapter 01's CNN
by share of the training split, mean ± std over the `standard` records in results/runs/, as JSON
and as a figure (one panel per dataset). Nothing is trained here: it reads the records.

    python bench/vit_hunger.py     # -> results/vit_data_hunger.json, results/vit_data_hunger.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import report  # noqa: E402


def main() -> int:
    records = {p.name: json.loads(p.read_text()) for p in sorted((BENCH / "results" / "runs").glob("07_vit_*.json"))}
    summary = report.vit_summary(records)
    summary = dict(sorted(summary.items(), key=lambda kv: -len(kv[1]["seeds"])))  # the 3-seed dataset first
    if not summary:
        print("no chapter 07 standard records in results/runs/", file=sys.stderr)
        return 1
    out = {"bench": "vit_data_hunger", "about": "test AUC by share of the training split, mean and std over seeds "
           "(one per record); each point of a record is one trained model, chosen on validation",
           "datasets": {flag: {"seeds": v["seeds"], "records": v["records"], "hunger": v["hunger"]}
                        for flag, v in summary.items()}}
    (BENCH / "results" / "vit_data_hunger.json").write_text(json.dumps(out, indent=1) + "\n")
    fig, axes = plt.subplots(1, len(summary), figsize=(5.2 * len(summary), 3.6), squeeze=False)
    for ax, (flag, v) in zip(axes[0], summary.items()):
        fr = sorted({float(k.split("@")[1]) for k in v["hunger"]})
        for name in ("ViT", "CNN"):
            pts = [v["hunger"][f"{name}@{f:g}"] for f in fr]
            m = [p["auc"]["mean"] for p in pts]
            s = [p["auc"]["std"] for p in pts]
            x = [100 * f for f in fr]
            line, = ax.plot(x, m, marker="o", lw=2, label=name if name == "ViT" else "CNN (chapter 01)")
            ax.fill_between(x, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)], color=line.get_color(),
                            alpha=0.18)
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks([100 * f for f in fr], [f"{100 * f:g}%\n({v['hunger'][f'ViT@{f:g}']['n_train']})" for f in fr])
        ax.set_xlabel("share of the training split (images)"), ax.set_ylabel("test AUC"), ax.grid(alpha=0.3)
        ax.set_title(f"{flag}: {report._over(v['seeds'])}", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "results" / "vit_data_hunger.png", dpi=120)
    print("wrote results/vit_data_hunger.json and results/vit_data_hunger.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
