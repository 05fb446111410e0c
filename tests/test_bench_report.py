"""bench/report.py checks the evidence: every record the READMEs cite exists, targets come
from targets.json, and on this repository the report passes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _report(bench: Path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(bench / "report.py"), *args], capture_output=True, text=True,
                          timeout=120, cwd=bench)


def _fake_bench(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    bench = repo / "bench"
    (bench / "results" / "runs").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "report.py", bench / "report.py")
    (repo / "medlib").symlink_to(ROOT / "medlib")  # min_from targets read medlib.baselines
    (repo / "README.md").write_text("DSB Dice 0.9 (`bench/results/runs/05_unet_dsb.json`).\n")
    (bench / "README.md").write_text("See results/runs/05_unet_dsb.json.\n")
    record = {"chapter": "05_unet", "dataset": "dsb2018_96", "profile": "standard", "seed": 0, "device": "cpu",
              "model": "unet", "model_params": 1000, "train_seconds": 10.0, "metrics": {"test": {"dice": 0.9}}}
    (bench / "results" / "runs" / "05_unet_dsb.json").write_text(json.dumps(record))
    targets = {"targets": [{"chapter": "05_unet", "dataset": "dsb2018_96", "profile": "standard",
                            "metric": "dice", "min": 0.88},
                           {"chapter": "01_cnn", "dataset": "breastmnist", "profile": "standard",
                            "metric": "auc", "min_from": "MedMNIST v2: ResNet-18 (28)"}]}
    (bench / "targets.json").write_text(json.dumps(targets))
    return bench


def test_a_missing_cited_record_fails_the_report(tmp_path):
    bench = _fake_bench(tmp_path)
    ok = _report(bench)
    assert ok.returncode == 0, ok.stderr
    assert "| 05_unet | dsb2018_96 | standard | dice | >= 0.88 | runs/ | 1 | 0.9 ± 0 | yes |" in ok.stdout
    assert ">= 0.901 (MedMNIST v2: ResNet-18 (28)) | runs/ | 0 | not measured" in ok.stdout  # medlib.baselines
    strict = _report(bench, "--strict")
    assert strict.returncode == 1 and "not measured" in strict.stderr
    (bench / "results" / "runs" / "05_unet_dsb.json").unlink()
    gone = _report(bench)
    assert gone.returncode == 1
    assert "missing record results/runs/05_unet_dsb.json (cited in README.md, bench/README.md)" in gone.stderr


def test_a_missed_target_is_shown_and_fails_strict(tmp_path):
    bench = _fake_bench(tmp_path)
    rec = bench / "results" / "runs" / "05_unet_dsb.json"
    r = json.loads(rec.read_text())
    r["metrics"]["test"]["dice"] = 0.8
    rec.write_text(json.dumps(r))
    out = _report(bench, "--strict")
    assert "| **no** |" in out.stdout and out.returncode == 1 and "0.8 misses >= 0.88" in out.stderr


def test_the_repository_evidence_is_complete():
    """Every record README.md and bench/README.md cite is committed and readable."""
    out = _report(ROOT / "bench")
    assert out.returncode == 0, out.stderr


def test_a_run_that_reused_a_model_does_not_count_toward_a_target(tmp_path):
    bench = _fake_bench(tmp_path)
    r = json.loads((bench / "results" / "runs" / "05_unet_dsb.json").read_text())
    r["metrics"]["test"]["dice"], r["reused"] = 0.5, {"label": "model", "from": "runs/x", "checksum": "ab"}
    (bench / "results" / "runs" / "05_unet_dsb_reuse.json").write_text(json.dumps(r))
    out = _report(bench)
    assert "| 05_unet | dsb2018_96 | standard | dice | >= 0.88 | runs/ | 1 | 0.9 ± 0 | yes |" in out.stdout


def test_chapter_02_seeds_are_aggregated_beside_medmnist(tmp_path):
    bench = _fake_bench(tmp_path)
    for seed, (auc, base_auc) in enumerate(((0.80, 0.70), (0.90, 0.74))):
        test = {"auc": auc, "acc": 0.8, "balanced_acc": 0.7, "sensitivity": 0.6, "specificity": 0.8}
        other = {"auc": base_auc, "acc": 0.7, "bacc": 0.6, "sens": 0.5, "spec": 0.7, "model_params": 10, "macs": 1}
        record = {"chapter": "02_rnn", "dataset": "adrenalmnist3d", "profile": "standard", "seed": seed,
                  "device": "cpu", "model": None, "model_params": 100, "train_seconds": 30.0, "run_seconds": 200.0,
                  "params": {"size": 28}, "cell": "gru", "metrics": {"test": test},
                  "trivial_baseline": {"auc": 0.5, "acc": 0.77},
                  "others": {"ours: 3D CNN (standard)": other},
                  "validation": {"train s": {"slicernn": 30.0, "3D CNN": 10.0}},
                  "ablations": {c: {"main": 0.8, "step 2": 0.7 + seed / 10} for c in
                                ("val AUC", "val ACC", "val balanced acc", "train s")}}
        (bench / "results" / "runs" / f"02_rnn_adrenalmnist3d_standard_cpu_seed{seed}.json").write_text(json.dumps(record))
    out = _report(bench)
    assert out.returncode == 0, out.stderr
    assert "| MedMNIST v2: ResNet-18+3D | 0.827 | 0.721 |" in out.stdout
    assert "| **ours: slice reader (gru)** | 0.850 ± 0.050 | 0.800 ± 0.000 |" in out.stdout
    assert "| ours: 3D CNN (standard) | 0.720 ± 0.020 |" in out.stdout and "| 10 | 10 ± 0 |" in out.stdout
    assert "| step 2 | 0.750 ± 0.050 |" in out.stdout


def test_chapter_03_denoising_and_anomaly_tables_aggregate_seeds(tmp_path):
    bench = _fake_bench(tmp_path)
    for seed, (learned, bm3d) in enumerate(((29.0, 27.7), (29.2, 27.7))):
        rows = [{"noise": "gaussian", "level": lv, "method": m, "psnr": p, "ssim": 0.9, "ms / image": 2.0}
                for lv in ("σ=15/255", "σ=25/255", "σ=50/255") for m, p in (("BM3D", bm3d), ("learned (U-Net)", learned))]
        test = {"anomaly_auc": 0.8 + seed / 100, "denoise_psnr": learned, "bm3d_psnr": bm3d, "denoise_ssim": 0.92,
                "bm3d_ssim": 0.9, "denoise_gain_psnr": learned - bm3d, "denoise_gain_ssim": 0.02}
        record = {"chapter": "03_autoencoders", "dataset": "pneumoniamnist", "profile": "standard", "seed": seed,
                  "device": "cpu", "model": None, "noise": "gaussian", "n_denoise": 160, "run_seconds": 250.0,
                  "metrics": {"test": test}, "denoising": rows, "anomaly_headline": "kNN",
                  "anomaly": {"kNN": {"auc": 0.8 + seed / 100, "auc_lo": 0.77, "auc_hi": 0.84, "sensitivity": 0.7,
                                      "specificity": 0.9},
                              "supervised": {"auc": 0.96, "auc_lo": 0.94, "auc_hi": 0.97, "sensitivity": float("nan"),
                                             "specificity": float("nan")}},
                  "few_labels": {"1% (47 images)": {"codes + LR": 0.9, "CNN": 0.8 + seed / 10}}}
        (bench / "results" / "runs" / f"03_autoencoders_pneumoniamnist_standard_cpu_seed{seed}.json").write_text(
            json.dumps(record))
    out = _report(bench)
    assert out.returncode == 0, out.stderr
    assert "| **learned (U-Net)** | 29.10 ± 0.10 / 0.900 ± 0.000 |" in out.stdout
    assert "| BM3D | 27.70 ± 0.00 / 0.900 ± 0.000 |" in out.stdout
    assert "PSNR 1.40 ± 0.10 dB, SSIM 0.020 ± 0.000" in out.stdout
    assert "| kNN | 0.805 ± 0.005 | 0.770–0.840 | 0.700 ± 0.000 | 0.900 ± 0.000 |" in out.stdout
    assert "| supervised | 0.960 ± 0.000 | 0.940–0.970 | — | — |" in out.stdout
    assert "| 1% (47 images) | 0.900 ± 0.000 | 0.850 ± 0.050 |" in out.stdout


def test_the_sweep_wall_time_table_reads_its_record(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import report

    text = report.sweep_smoke(ROOT / "bench" / "results" / "sweep_smoke.json")
    assert "| 1 worker |" in text and "| 2 workers |" in text and "| Dask LocalCluster, 2 workers |" in text
    assert "in every mode: yes" in text


def test_a_baseline_target_can_name_the_published_metric(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import report

    t = {"chapter": "08_hybrids", "dataset": "vesselmnist3d", "profile": "standard", "metric": "fused_acc",
         "min_from": "MedMNIST v2: ResNet-18+ACS", "baseline_metric": "acc"}
    assert report._threshold(t) == (">=", 0.928)  # the published ACC, compared with the chapter's fused_acc


def test_chapter_08_tables_read_the_committed_records():
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "hybrids.py")], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.index("**pneumoniamnist**") < out.stdout.index("**adrenalmnist3d**")  # the default path first
    assert "| conv-stem ViT | CNN (every seed) |" in out.stdout  # a verdict row: the better parent per seed
    assert "MedMNIST v2: auto-sklearn" in out.stdout and "TransUNet − U-Net Dice per seed" in out.stdout
