"""Chapter 08's fusion recipes on synthetic MedMNIST-shaped splits: parallel feature extraction
equals the serial one, a network's features are what its last linear layer reads, the
late-fusion weight follows the better classifier, and the learners' errors are clear."""

import numpy as np
import pytest
import torch

from medlib.data.synthetic import synthetic
from medlib.features import feature_matrix
from medlib.models.cnn import build_model
from medlib.models.vit import vit
from medlib.recipes import hybrids as H
from medlib.transfer import embed, features


@pytest.fixture(scope="module")
def data():
    return synthetic("binary-class", n=24)


def test_split_features_in_parallel_equal_the_serial_ones(data):
    X, names = H.split_features(data.train, n_jobs=2)
    ref, ref_names = feature_matrix(data.train.images.numpy(), 2)
    assert names == ref_names and np.array_equal(X, ref)
    assert set(H.columns(names, ("shape",))) == {i for i, n in enumerate(names) if n.startswith("shape_")}


def test_network_features_are_the_input_of_the_last_linear_layer(data):
    torch.manual_seed(0)
    model = build_model("compactresnet", 1, 2).eval()
    emb = features(model, data.val, batch_size=7)  # several batches
    assert emb.shape == (len(data.val), model.head.in_features)
    x = (data.val.images.float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        assert np.allclose(model.head(torch.from_numpy(emb)).numpy(), model(x).numpy(), atol=1e-5)
        assert np.allclose(emb, embed(model, x).numpy(), atol=1e-6)  # the encoder's output, as chapter 06 reads it
    assert not model.head._forward_pre_hooks  # the hook is removed
    v = vit(1, 2, 28).eval()  # no .features/.pool: the hook still finds the class token's vector
    assert features(v, data.val).shape == (len(data.val), v.head.in_features)
    with pytest.raises(ValueError, match="no nn.Linear"):
        features(torch.nn.Sequential(torch.nn.Flatten()), data.val)


def test_late_fusion_weight_follows_the_better_classifier():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    good = np.stack([1 - y, y], 1) * 0.8 + 0.1  # perfectly ranked
    noise = rng.random(200)
    bad = np.stack([1 - noise, noise], 1)
    w, curve = H.late_fusion_weight(good, bad, y, "binary-class", 2)
    assert curve[1.0] == 1.0 and curve[0.0] < 0.7
    assert w >= 0.5 and curve[w] == max(curve.values())
    w2, _ = H.late_fusion_weight(bad, good, y, "binary-class", 2)
    assert w2 <= 0.5  # symmetric: the weight goes to the good one


def test_learners_fit_and_refuse_unknown_names(data):
    X, _ = H.split_features(data.train, n_jobs=1)
    y = H.labels_of(data.train)
    for kind in ("gbm", "logistic"):
        (p,) = H.fit_scores(H.feature_learner(kind), X, y, X)
        assert p.shape == (len(y), 2) and np.allclose(p.sum(1), 1)
    with pytest.raises(ValueError, match="valid choices"):
        H.feature_learner("svm")
    ml = synthetic("multi-label, binary-class", n=8)
    with pytest.raises(ValueError, match="multi-label"):
        H.labels_of(ml.train)


def test_networks_are_built_under_a_seed_and_sized_to_their_parents(data):
    a = H.build_network("conv-stem ViT", data.info, 28, seed=3)
    b = H.build_network("conv-stem ViT", data.info, 28, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    cnn = H.build_network("CNN", data.info, 28, seed=3)
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert 0.8 < n(a) / n(cnn) < 1.3  # the hybrid is sized to the CNN
    with pytest.raises(ValueError, match="valid choices"):
        H.build_network("mlp", data.info, 28, seed=0)
    assert H.epochs_for(data.train, 240) == 10 and H.epochs_for(data.train, 240, epochs=2) == 2


def test_unetr_reference_builds_for_2d_images_of_its_size():
    from monai.networks.nets import UNETR

    from medlib.cost import count_parameters

    torch.manual_seed(0)
    net = UNETR(1, 1, **H.unetr_kwargs(32))
    assert net(torch.randn(2, 1, 32, 32)).shape == (2, 1, 32, 32)
    assert 1.0e6 < count_parameters(net) < 2.5e6  # twelve blocks of width 96, scaled down from the paper's 88 M
