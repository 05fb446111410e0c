"""Run the chapter runs that README.md and bench/README.md cite, and copy each run's own
results.json into bench/results/runs/<chapter>_<dataset>_<profile>_<device>[_seedN][_tag].json,
unchanged except for one added key, `run_seconds`: the `medlib run` clock (kernel start to the
last cell, as a user waits for it; the notebook's own `notebook_seconds` starts at its first cell).

    python bench/record_runs.py --list              # what would run
    python bench/record_runs.py                     # all of them, one after another
    python bench/record_runs.py --only 05_drive     # those whose name starts with this

Each run is an ordinary `medlib run` (papermill, a fresh kernel); timings are only meaningful on
a machine that is otherwise idle. A record that exists is kept (delete it to measure again).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RUNS = BENCH / "results" / "runs"

# name -> (chapter, [-p name value ...], extra CLI flags)
PLAN = {
    "00_data_tour_pneumoniamnist_standard_cpu": ("00_data_tour", [], []),
    "01_cnn_pneumoniamnist_standard_cpu": ("01_cnn", ["dataset", "pneumoniamnist"], []),
    "01_cnn_pneumoniamnist_standard_cpu_reuse": ("01_cnn", ["dataset", "pneumoniamnist", "reuse", "True"], []),
    "01_cnn_breastmnist_standard_cpu": ("01_cnn", ["dataset", "breastmnist"], []),
    "01_cnn_retinamnist_standard_cpu": ("01_cnn", ["dataset", "retinamnist"], []),
    "02_rnn_adrenalmnist3d_standard_cpu_seed0": ("02_rnn", ["dataset", "adrenalmnist3d", "seed", "0"], []),
    "02_rnn_adrenalmnist3d_standard_cpu_seed0_reuse": ("02_rnn", ["dataset", "adrenalmnist3d", "seed", "0", "reuse",
                                                                  "True"], []),
    "02_rnn_adrenalmnist3d_standard_cpu_seed1": ("02_rnn", ["dataset", "adrenalmnist3d", "seed", "1"], []),
    "02_rnn_adrenalmnist3d_standard_cpu_seed2": ("02_rnn", ["dataset", "adrenalmnist3d", "seed", "2"], []),
    "02_rnn_vesselmnist3d_standard_cpu_seed0": ("02_rnn", ["dataset", "vesselmnist3d", "seed", "0"], []),
    "02_rnn_vesselmnist3d_standard_cpu_seed1": ("02_rnn", ["dataset", "vesselmnist3d", "seed", "1"], []),
    "02_rnn_vesselmnist3d_standard_cpu_seed2": ("02_rnn", ["dataset", "vesselmnist3d", "seed", "2"], []),
    "02_rnn_adrenalmnist3d_smoke_cpu_size64": ("02_rnn", ["dataset", "adrenalmnist3d", "size", "64"],
                                               ["--profile", "smoke"]),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed0": ("03_autoencoders", ["seed", "0"], []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed0_reuse": ("03_autoencoders", ["seed", "0", "reuse", "True"], []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed1": ("03_autoencoders", ["seed", "1"], []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed2": ("03_autoencoders", ["seed", "2"], []),
    "03_autoencoders_pneumoniamnist_smoke_cpu_seed0": ("03_autoencoders", ["seed", "0"], ["--profile", "smoke"]),
    "03_autoencoders_breastmnist_standard_cpu_seed0_speckle": ("03_autoencoders", ["dataset", "breastmnist", "noise",
                                                                                   "speckle", "seed", "0"], []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed0_poisson": ("03_autoencoders", ["noise", "poisson", "seed", "0"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed1_poisson": ("03_autoencoders", ["noise", "poisson", "seed", "1"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed2_poisson": ("03_autoencoders", ["noise", "poisson", "seed", "2"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed0_rician": ("03_autoencoders", ["noise", "rician", "seed", "0"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed1_rician": ("03_autoencoders", ["noise", "rician", "seed", "1"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed2_rician": ("03_autoencoders", ["noise", "rician", "seed", "2"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed0_speckle": ("03_autoencoders", ["noise", "speckle", "seed", "0"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed1_speckle": ("03_autoencoders", ["noise", "speckle", "seed", "1"],
                                                                            []),
    "03_autoencoders_pneumoniamnist_standard_cpu_seed2_speckle": ("03_autoencoders", ["noise", "speckle", "seed", "2"],
                                                                            []),
    "07_vit_pneumoniamnist_standard_cpu_seed0": ("07_vit", ["seed", "0"], []),
    "07_vit_pneumoniamnist_standard_cpu_seed0_reuse": ("07_vit", ["seed", "0", "reuse", "True"], []),
    "07_vit_pneumoniamnist_standard_cpu_seed1": ("07_vit", ["seed", "1"], []),
    "07_vit_pneumoniamnist_standard_cpu_seed2": ("07_vit", ["seed", "2"], []),
    "07_vit_pneumoniamnist_smoke_cpu_seed0": ("07_vit", ["seed", "0"], ["--profile", "smoke"]),
    "07_vit_breastmnist_standard_cpu_seed0": ("07_vit", ["dataset", "breastmnist", "seed", "0"], []),
    "07_vit_retinamnist_standard_cpu_seed0": ("07_vit", ["dataset", "retinamnist", "seed", "0"], []),
    "07_vit_breastmnist_smoke_cpu_seed0_patch7": ("07_vit", ["dataset", "breastmnist", "patch_size", "7",
                                                             "seed", "0"], ["--profile", "smoke"]),
    "06_transfer_learning_breastmnist_standard_cpu_seed0": ("06_transfer_learning", ["seed", "0"], []),
    "06_transfer_learning_breastmnist_standard_cpu_seed1": ("06_transfer_learning", ["seed", "1"], []),
    "06_transfer_learning_breastmnist_standard_cpu_seed2": ("06_transfer_learning", ["seed", "2"], []),
    "06_transfer_learning_breastmnist_smoke_cpu_seed0": ("06_transfer_learning", ["seed", "0"], ["--profile", "smoke"]),
    "06_transfer_learning_retinamnist_standard_cpu_seed0": ("06_transfer_learning", ["target", "retinamnist", "seed", "0"], []),
    "06_transfer_learning_retinamnist_standard_cpu_seed1": ("06_transfer_learning", ["target", "retinamnist", "seed", "1"], []),
    "06_transfer_learning_retinamnist_standard_cpu_seed2": ("06_transfer_learning", ["target", "retinamnist", "seed", "2"], []),
    "09_xai_pneumoniamnist_standard_cpu_seed0": ("09_xai", ["seed", "0"], []),
    "09_xai_pneumoniamnist_standard_cpu_seed1": ("09_xai", ["seed", "1"], []),
    "09_xai_pneumoniamnist_standard_cpu_seed2": ("09_xai", ["seed", "2"], []),
    "09_xai_pneumoniamnist_smoke_cpu_seed0": ("09_xai", ["seed", "0"], ["--profile", "smoke"]),
    "09_xai_breastmnist_smoke_cpu_seed0_vit": ("09_xai", ["dataset", "breastmnist", "model", "vit", "seed", "0"],
                                               ["--profile", "smoke"]),
    "09_xai_breastmnist_standard_cpu_seed0_vit": ("09_xai", ["dataset", "breastmnist", "model", "vit", "seed", "0"], []),
    "04_gans_pneumoniamnist_standard_cpu_seed0": ("04_gans", ["seed", "0"], []),
    "04_gans_pneumoniamnist_standard_cpu_seed0_reuse": ("04_gans", ["seed", "0", "reuse", "True"], []),
    "04_gans_pneumoniamnist_standard_cpu_seed1": ("04_gans", ["seed", "1"], []),
    "04_gans_pneumoniamnist_standard_cpu_seed2": ("04_gans", ["seed", "2"], []),
    "04_gans_pneumoniamnist_smoke_cpu_seed0": ("04_gans", ["seed", "0"], ["--profile", "smoke"]),
    "04_gans_retinamnist_standard_cpu_seed0": ("04_gans", ["dataset", "retinamnist", "seed", "0"], []),
    "08_hybrids_pneumoniamnist_standard_cpu_seed0": ("08_hybrids", ["dataset", "pneumoniamnist", "seed", "0"], []),
    "08_hybrids_pneumoniamnist_standard_cpu_seed1": ("08_hybrids", ["dataset", "pneumoniamnist", "seed", "1"], []),
    "08_hybrids_pneumoniamnist_standard_cpu_seed2": ("08_hybrids", ["dataset", "pneumoniamnist", "seed", "2"], []),
    "08_hybrids_adrenalmnist3d_standard_cpu_seed0": ("08_hybrids", ["dataset", "adrenalmnist3d", "seed", "0"], []),
    "08_hybrids_adrenalmnist3d_standard_cpu_seed1": ("08_hybrids", ["dataset", "adrenalmnist3d", "seed", "1"], []),
    "08_hybrids_adrenalmnist3d_standard_cpu_seed2": ("08_hybrids", ["dataset", "adrenalmnist3d", "seed", "2"], []),
    "08_hybrids_vesselmnist3d_standard_cpu_seed0": ("08_hybrids", ["dataset", "vesselmnist3d", "seed", "0"], []),
    "08_hybrids_vesselmnist3d_standard_cpu_seed1": ("08_hybrids", ["dataset", "vesselmnist3d", "seed", "1"], []),
    "08_hybrids_vesselmnist3d_standard_cpu_seed2": ("08_hybrids", ["dataset", "vesselmnist3d", "seed", "2"], []),
    "08_hybrids_dsb2018_96_standard_cpu_seed0": ("08_hybrids", ["seg_dataset", "dsb2018_96", "seed", "0"], []),
    "08_hybrids_dsb2018_96_standard_cpu_seed1": ("08_hybrids", ["seg_dataset", "dsb2018_96", "seed", "1"], []),
    "08_hybrids_dsb2018_96_standard_cpu_seed2": ("08_hybrids", ["seg_dataset", "dsb2018_96", "seed", "2"], []),
    "08_hybrids_drive_standard_cpu_seed0": ("08_hybrids", ["seg_dataset", "drive", "seed", "0"], []),
    "08_hybrids_pneumoniamnist_standard_cpu_seed0_reuse": ("08_hybrids", ["dataset", "pneumoniamnist", "seed", "0", "reuse", "True"], []),
    "08_hybrids_pneumoniamnist_smoke_cpu_seed0": ("08_hybrids", ["seed", "0"], ["--profile", "smoke"]),
    "11_trust_pneumoniamnist_standard_cpu_seed0": ("11_trust", ["seed", "0"], []),
    "11_trust_pneumoniamnist_standard_cpu_seed1": ("11_trust", ["seed", "1"], []),
    "11_trust_pneumoniamnist_standard_cpu_seed2": ("11_trust", ["seed", "2"], []),
    "11_trust_pneumoniamnist_smoke_cpu_seed0": ("11_trust", ["seed", "0"], ["--profile", "smoke"]),
    "11_trust_retinamnist_standard_cpu_seed0_bald": ("11_trust", ["dataset", "retinamnist", "query", "bald", "seed", "0"], []),
    "11_trust_retinamnist_standard_cpu_seed1_bald": ("11_trust", ["dataset", "retinamnist", "query", "bald", "seed", "1"], []),
    "11_trust_retinamnist_standard_cpu_seed2_bald": ("11_trust", ["dataset", "retinamnist", "query", "bald", "seed", "2"], []),
    "05_unet_dsb2018_96_standard_cpu": ("05_unet", ["dataset", "dsb2018_96"], []),
    "05_unet_dsb2018_96_standard_cpu_reuse": ("05_unet", ["dataset", "dsb2018_96", "reuse", "True"], []),
    "05_unet_drive_standard_cpu_seed0": ("05_unet", ["dataset", "drive", "seed", "0"], []),
    "05_unet_drive_standard_cpu_seed1": ("05_unet", ["dataset", "drive", "seed", "1"], []),
    "05_unet_drive_standard_cpu_seed2": ("05_unet", ["dataset", "drive", "seed", "2"], []),
    "05_unet_dsb2018_96_smoke_cpu_seed0": ("05_unet", ["seed", "0"], ["--profile", "smoke"]),
    "05_unet_dsb2018_96_smoke_cpu_seed0_again": ("05_unet", ["seed", "0"], ["--profile", "smoke"]),
    "05_unet_dsb2018_96_smoke_cpu_seed1": ("05_unet", ["seed", "1"], ["--profile", "smoke"]),
    "05_unet_folder_standard_cpu": ("05_unet", ["dataset", "{folder}"], []),
}


def drive_folder(root: Path) -> Path:
    """The DRIVE training images laid out as a user's folder: images/NN.tif + masks/NN.gif."""
    src = Path(os.environ.get("MEDLIB_DATA", REPO / "datasets")) / "drive" / "training"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for img in sorted((src / "images").glob("*_training.tif")):
        n = img.name.split("_")[0]
        shutil.copy(img, root / "images" / f"{n}.tif")
        shutil.copy(src / "1st_manual" / f"{n}_manual1.gif", root / "masks" / f"{n}.gif")
    return root


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=[])
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    plan = {k: v for k, v in PLAN.items() if not args.only or any(k.startswith(o) for o in args.only)}
    if args.list:
        for k, (ch, p, f) in plan.items():
            print(f"{k:45s} medlib run {ch} {' '.join(f'-p {a} {b}' for a, b in zip(p[::2], p[1::2]))} {' '.join(f)}")
        return 0
    RUNS.mkdir(parents=True, exist_ok=True)
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = drive_folder(Path(tmp) / "myfolder")
        for name, (chapter, params, flags) in plan.items():
            out = RUNS / f"{name}.json"
            if out.exists():
                print(f"{name}: recorded already ({out.relative_to(REPO)}); skipped")
                continue
            params = [str(folder) if p == "{folder}" else p for p in params]
            # one runs folder per record, except that the reuse run shares the plain run's (it loads its model)
            runs_root = Path(tmp) / "runs" / name.removesuffix("_reuse")
            cmd = [sys.executable, "-m", "medlib.cli", "run", chapter, "--quiet", "--runs", str(runs_root), *flags]
            for a, b in zip(params[::2], params[1::2]):
                cmd += ["-p", a, b]
            if name.endswith("_reuse") and not any(runs_root.glob(f"{chapter}/*/results.json")):
                # the run to reuse was recorded by an earlier call: train it again here (not recorded)
                first = cmd[:cmd.index("reuse")] + ["reuse", "False"] + cmd[cmd.index("reuse") + 2:]
                print(f"{name}: first, the run it reuses: {' '.join(first[2:])}", flush=True)
                subprocess.run(first, cwd=REPO, check=True)
            print(f"{name}: {' '.join(cmd[2:])}", flush=True)
            code = subprocess.run(cmd, cwd=REPO).returncode
            found = sorted(runs_root.glob(f"{chapter}/*/results.json"), key=lambda p: p.stat().st_mtime)
            if code != 0 or not found:
                failed.append(name)
                print(f"{name}: FAILED (exit {code})", file=sys.stderr)
                continue
            r = json.loads(found[-1].read_text())
            r["run_seconds"] = json.loads((found[-1].parent / "run.json").read_text())["seconds"]
            out.write_text(json.dumps(r, indent=2) + "\n")
            print(f"{name}: recorded; test {json.dumps({k: round(v, 4) for k, v in r['metrics']['test'].items() if isinstance(v, float)})}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
