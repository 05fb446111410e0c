import shutil
import urllib.error

import numpy as np
import pytest
import torch
from medmnist.info import INFO
from torchvision import transforms

from medlib.data import augment, medmnist, registry
from medlib.data.batches import TensorLoader, normalize
from medlib.data.medmnist import DataError, load, stratified_indices
from medlib.data.synthetic import synthetic


def test_registry_covers_all_medmnist_datasets():
    reg = registry.registry()
    assert len(reg) == 18 and len(registry.flags(2)) == 12 and len(registry.flags(3)) == 6
    assert set(reg) == set(INFO)
    for flag, i in reg.items():
        assert i.sizes == ((28, 64, 128, 224) if i.dim == 2 else (28, 64))
        assert i.task in registry.TASKS and i.n_classes == len(INFO[flag]["label"])
        for s in i.sizes:
            assert i.md5(s) and i.url(s).startswith("https://")
    tasks = {i.task for i in reg.values()}
    assert tasks == set(registry.TASKS)
    assert reg["dermamnist"].license == "CC BY-NC 4.0"
    assert reg["pneumoniamnist"].labels == ("normal", "pneumonia")


def test_unknown_flag_and_size_list_the_choices():
    with pytest.raises(ValueError, match="valid choices: pathmnist"):
        registry.info("nosuch")
    with pytest.raises(ValueError, match=r"valid sizes: \[28, 64\]"):
        registry.info("vesselmnist3d").filename(128)
    assert registry.info("pathmnist").filename(64) == "pathmnist_64.npz"


def test_missing_file_offline_names_file_md5_url_and_remedies(tmp_path, monkeypatch):
    def no_network(*a, **k):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", no_network)
    monkeypatch.delenv("MEDLIB_OFFLINE", raising=False)
    monkeypatch.setenv("MEDLIB_DATA", str(tmp_path))
    with pytest.raises(DataError) as e:
        load("pneumoniamnist")
    msg = str(e.value)
    for part in ("pneumoniamnist.npz", "28209eda62fecd6e6a2d98b1501bb15f", "zenodo.org",
                 str(tmp_path / "medmnist" / "pneumoniamnist.npz"), "MEDLIB_DATA", "no network"):
        assert part in msg
    assert not list(tmp_path.rglob("*.part")), "a failed download left a partial file"


def test_offline_mode_never_tries_the_network(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("network used in offline mode")

    monkeypatch.setattr(medmnist.urllib.request, "urlopen", fail)
    monkeypatch.setenv("MEDLIB_OFFLINE", "1")
    with pytest.raises(DataError, match="MEDLIB_OFFLINE is set"):
        load("breastmnist", root=tmp_path)


def test_truncated_file_is_a_checksum_error_and_is_kept(tmp_path, data_root):
    src = data_root / "medmnist" / "breastmnist.npz"
    dst = tmp_path / "medmnist" / "breastmnist.npz"
    dst.parent.mkdir()
    dst.write_bytes(src.read_bytes()[:100_000])
    with pytest.raises(DataError, match="checksum mismatch") as e:
        load("breastmnist", root=tmp_path, download=False)
    assert "NOT deleted" in str(e.value) and "750601b1f35ba3300ea97c75c52ff8f6" in str(e.value)
    assert dst.stat().st_size == 100_000


def test_corrupted_file_of_right_size_is_rejected(tmp_path, data_root):
    dst = tmp_path / "medmnist" / "breastmnist.npz"
    dst.parent.mkdir()
    shutil.copy(data_root / "medmnist" / "breastmnist.npz", dst)
    raw = bytearray(dst.read_bytes())
    raw[5000] ^= 0xFF
    dst.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="checksum mismatch"):
        load("breastmnist", root=tmp_path)


@pytest.mark.parametrize("flag, size, shape", [
    ("breastmnist", 28, (546, 1, 28, 28)),
    ("retinamnist", 28, (1080, 3, 28, 28)),
    ("vesselmnist3d", 28, (1335, 1, 28, 28, 28)),
])
def test_real_splits_are_uint8_tensors(data_root, flag, size, shape):
    d = load(flag, size, root=data_root)
    assert tuple(d.train.images.shape) == shape and d.train.images.dtype == torch.uint8
    assert d.train.labels.shape == (shape[0], 1) and d.train.labels.dtype == torch.int64
    assert [len(d.split(s)) for s in ("train", "val", "test")] == [INFO[flag]["n_samples"][s] for s in ("train", "val", "test")]


def test_loader_matches_official_totensor_normalize(data_root):
    import medmnist as mm

    d = load("retinamnist", root=data_root)
    official = mm.RetinaMNIST(split="val", root=str(data_root / "medmnist"), download=False,
                              transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize([0.5], [0.5])]))
    x, y = next(iter(TensorLoader(d.val, batch_size=32)))
    ref = torch.stack([official[i][0] for i in range(32)])
    assert torch.allclose(x, ref, atol=1e-6)
    assert torch.equal(y, torch.as_tensor(np.stack([official[i][1] for i in range(32)]))[:, 0])


@pytest.mark.parametrize("task", list(registry.TASKS))
def test_stratified_subset_keeps_proportions_and_every_class(task):
    d = synthetic(task, n=400)
    sub = d.train.subset(40, seed=1)
    assert len(sub) == 40
    if task != "multi-label, binary-class":
        full = d.train.class_counts() / 400
        part = sub.class_counts() / 40
        assert np.abs(full - part).max() <= 0.05 and (sub.class_counts() > 0).all()
    assert torch.equal(sub.images, d.train.subset(40, seed=1).images)


def test_subset_keeps_a_rare_class():
    labels = np.array([[0]] * 990 + [[1]] * 10)
    idx = stratified_indices(labels, 20)
    assert len(idx) == 20 and (labels[idx, 0] == 1).sum() >= 1


def test_loader_is_deterministic_and_covers_the_split():
    d = synthetic("multi-class", n=100)
    a = [y for _, y in TensorLoader(d.train, 32, shuffle=True, seed=3)]
    b = [y for _, y in TensorLoader(d.train, 32, shuffle=True, seed=3)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert sorted(torch.cat(a).tolist()) == sorted(d.train.targets.tolist())
    assert len(TensorLoader(d.train, 32, drop_last=True)) == 3


def test_multilabel_targets_are_float_vectors():
    d = synthetic("multi-label, binary-class", n=20)
    _, y = next(iter(TensorLoader(d.train, 8)))
    assert y.shape == (8, 3) and y.dtype == torch.float32


def test_augmentations_keep_shape_and_follow_the_generator():
    x = normalize(synthetic("binary-class", n=16, channels=3).train.images)
    aug = augment.standard_2d(vflip=True)
    a = aug(x, torch.Generator().manual_seed(0))
    b = aug(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, x)
    flipped = augment.random_flip(x, torch.Generator().manual_seed(0), p=1.0)
    assert torch.equal(flipped, x.flip(-1))
    ident = augment.random_affine(x, torch.Generator(), degrees=0, translate=0, scale=(1, 1))
    assert torch.allclose(ident, x, atol=1e-5)
