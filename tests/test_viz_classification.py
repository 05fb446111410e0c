"""Chapter 01 figures: each draws on real-shaped inputs, and the ROC points are right."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from medlib.data.synthetic import synthetic  # noqa: E402
from medlib.metrics.classification import binary_auc  # noqa: E402
from medlib.recipes.classification import train_classifier  # noqa: E402
from medlib.viz import classification as viz  # noqa: E402


def test_roc_points_integrate_to_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.random(200) + 0.5 * y
    fpr, tpr = viz.roc_points(y, s)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(binary_auc(y, s), abs=1e-9)


@pytest.mark.parametrize("task,k,channels", [("binary-class", 2, 1), ("ordinal-regression", 5, 3)])
def test_figures_draw(task, k, channels):
    d = synthetic(task, n=40, channels=channels)
    rng = np.random.default_rng(0)
    y = d.val.labels.numpy()[:, 0]
    scores = rng.dirichlet(np.ones(k), size=len(y))  # (N, K)
    labels = d.info.labels
    figs = [viz.roc_curves(y, scores, labels), viz.confusion(y, scores, labels, task),
            viz.reliability_diagram(y, scores, task),
            viz.confident_mistakes(d.val.images, y, scores, labels, task, n=5),
            viz.filters(torch.randn(8, channels, 3, 3)),
            viz.feature_maps(d.val.images[0], torch.rand(6, 28, 28))]
    roc, conf = figs[0].axes[0], figs[1].axes[0]
    assert len(roc.lines) == (1 if k == 2 else k) + 1  # a curve per class (binary: positive) + chance
    assert len(conf.texts) == k * k  # a count in every cell
    assert len(figs[4].axes) == 8 and len([a for a in figs[5].axes if a.images]) == 7  # 8 filters; input + 6 maps
    for fig in figs:
        plt.close(fig)


def test_training_curves_mark_the_best_epoch():
    d = synthetic("binary-class", n=16)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(28 * 28, 2))
    h = train_classifier(model, d.train, d.val, epochs=3, batch_size=8, progress=False)
    fig = viz.training_curves({"a": h})
    loss_ax, auc_ax = fig.axes
    assert len(loss_ax.lines) == 2  # train and validation loss
    assert len(auc_ax.lines) == 2  # validation AUC and the best-epoch dot
    plt.close(fig)


def test_reliability_gap_spans_accuracy_and_mean_confidence():
    # 10 images at confidence 0.9 of class 1, 6 of them right: accuracy 0.6 < confidence 0.9
    y = np.array([1] * 6 + [0] * 4)
    s = np.full(10, 0.9)
    fig = viz.reliability_diagram(y, s, "binary-class", n_bins=10)
    acc_bars, gap_bars = fig.axes[0].containers
    assert len(acc_bars) == len(gap_bars) == 1  # empty bins draw nothing
    assert acc_bars[0].get_height() == pytest.approx(0.6)
    assert gap_bars[0].get_y() == pytest.approx(0.6)
    assert gap_bars[0].get_y() + gap_bars[0].get_height() == pytest.approx(0.9)
    plt.close(fig)


MULTI = "multi-label, binary-class"


def _multilabel_scores(seed=0):
    d = synthetic(MULTI, n=60)
    y = d.val.labels.numpy()  # (N, L) 0/1
    rng = np.random.default_rng(seed)
    scores = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1)  # (N, L) sigmoid-like, informative
    return d, y, scores


def test_multilabel_figures_are_per_label():
    d, y, scores = _multilabel_scores()
    labels = d.info.labels
    fig = viz.roc_curves(y, scores, labels)
    curves = [line for line in fig.axes[0].lines if line.get_label() != "chance"]
    assert len(curves) == y.shape[1]  # one curve per label, each on its own column
    for k, line in enumerate(curves):
        assert f"AUC {binary_auc(y[:, k], scores[:, k]):.3f}" in line.get_label()
    plt.close(fig)
    fig = viz.confusion(y, scores, labels, MULTI)
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == y.shape[1]
    pred = scores > 0.5
    tp = int((pred[:, 0] & (y[:, 0] == 1)).sum())
    assert panels[0].texts[3].get_text().startswith(f"{tp}\n")  # (present, predicted present)
    plt.close(fig)
    fig = viz.confident_mistakes(d.val.images, y, scores, labels, MULTI, n=5)
    assert sum(ax.axison for ax in fig.axes) == 5
    plt.close(fig)


def test_reliability_diagram_weighs_the_ece_gaps():
    """The drawn gaps, weighted by the bin counts, sum to the ECE of medlib.metrics —
    over (image, label) pairs for multi-label, over images otherwise."""
    from medlib.metrics.classification import expected_calibration_error

    _, y, scores = _multilabel_scores()
    rng = np.random.default_rng(1)
    y_mc = rng.integers(0, 4, 80)
    s_mc = rng.dirichlet(np.ones(4), size=80)
    y_b = rng.integers(0, 2, 80)
    s_b = np.clip(0.3 * y_b + 0.7 * rng.random(80), 0, 1)
    for task, yy, ss, n_pred in ((MULTI, y, scores, y.size), ("multi-class", y_mc, s_mc, 80),
                                 ("binary-class", y_b, s_b, 80)):
        fig = viz.reliability_diagram(yy, ss, task, n_bins=10)
        _, gaps = fig.axes[0].containers
        counts = np.array([b.get_height() for b in fig.axes[1].containers[0]])
        assert counts.sum() == n_pred
        weighted = sum(c / n_pred * g.get_height() for c, g in zip(counts[counts > 0], gaps))
        assert weighted == pytest.approx(expected_calibration_error(yy, ss, task, 10), abs=1e-9)
        plt.close(fig)


def test_class_rates_per_label_and_per_class():
    from medlib.metrics.classification import confusion_matrix, per_class

    _, y, scores = _multilabel_scores()
    r = viz.class_rates(y, scores, MULTI, y.shape[1])
    for k in range(y.shape[1]):
        pos, pred = y[:, k] == 1, scores[:, k] > 0.5
        assert r["sensitivity"][k] == pytest.approx((pred & pos).sum() / pos.sum())
        assert r["specificity"][k] == pytest.approx((~pred & ~pos).sum() / (~pos).sum())
        assert r["support"][k] == pos.sum()
    y1 = np.array([0, 1, 2, 2, 1])
    s1 = np.eye(3)[[0, 2, 2, 1, 1]]
    expected = per_class(confusion_matrix(y1, [0, 2, 2, 1, 1], 3))
    assert all(np.array_equal(viz.class_rates(y1[:, None], s1, "multi-class", 3)[k], v)
               for k, v in expected.items())


def test_confident_mistakes_rank_binary_negatives_by_one_minus_score():
    # 1-D positive scores: a negative prediction at s = 0.05 is 95% sure, the most confident mistake
    y = np.array([0, 0, 1, 1])
    s = np.array([0.9, 0.6, 0.05, 0.8])  # wrong, wrong, wrong, right
    images = torch.zeros(4, 1, 28, 28, dtype=torch.uint8)
    fig = viz.confident_mistakes(images, y, s, ["normal", "pneumonia"], "binary-class")
    titles = [ax.get_title() for ax in fig.axes if ax.axison]
    assert titles == ["true pneumonia\npred normal 0.95", "true normal\npred pneumonia 0.90",
                      "true normal\npred pneumonia 0.60"]
    plt.close(fig)
    s2 = np.stack([1 - s, s], 1)  # the same scores as (N, 2) probabilities
    fig = viz.confident_mistakes(images, y, s2, ["normal", "pneumonia"], "binary-class")
    assert [ax.get_title() for ax in fig.axes if ax.axison] == titles
    plt.close(fig)


def test_multilabel_ranking_uses_distance_from_one_half():
    y = np.array([[1, 0], [0, 1]])
    s = np.array([[0.02, 0.3], [0.55, 0.2]])  # wrong: (0, a) .98 sure, (1, b) .80, (1, a) .55
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    fig = viz.confident_mistakes(images, y, s, ["a", "b"], MULTI)
    assert [ax.get_title() for ax in fig.axes if ax.axison] == [
        "a\ntrue yes, p 0.02", "b\ntrue yes, p 0.20", "a\ntrue no, p 0.55"]
    plt.close(fig)


def test_chapter_01_final_evaluation_on_a_multilabel_dataset():
    """What notebooks/01_cnn.ipynb does after training (the final evaluation and its figures),
    on a multi-label dataset such as ChestMNIST (synthetic here: no ChestMNIST file offline)."""
    from medlib.config import setup
    from medlib.evaluation import evaluate_classifier
    from medlib.recipes.classification import build_classifier, recipe

    d = synthetic(MULTI, n=48)
    run = setup("99_test", profile="smoke", dataset="synthetic", model="compactresnet", verbose=False)
    info, K = d.info, d.info.n_classes
    net = build_classifier("compactresnet", info, 28, run=run)
    kw = recipe("standard", d.train, 1)
    hist = train_classifier(net, d.train, d.val, progress=False, **kw)
    assert hist.best_epoch == 1
    report = evaluate_classifier(run, net, d, history=hist)
    assert run.test_opened and len(report.test) == 48
    m, scores, y_test = report.metrics, report.scores, report.y
    assert m["auc_lo"] <= m["auc"] <= m["auc_hi"] and 0 <= report.val["acc"] <= 1
    assert scores.shape == y_test.shape and ((scores >= 0) & (scores <= 1)).all()
    assert "trivial: training class prior" in report.table.index
    assert report.table.loc["trivial: training class prior", "auc"] == 0.5  # a constant score ranks nothing
    rates = viz.class_rates(y_test, scores, info.task, K)
    assert all(len(v) == K for v in rates.values())
    for fig in (viz.roc_curves(y_test, scores, info.labels, task=info.task),
                viz.confusion(y_test, scores, info.labels, info.task),
                viz.reliability_diagram(y_test, scores, info.task),
                viz.confident_mistakes(report.test.images, y_test, scores, info.labels, info.task, n=12)):
        assert fig.axes
        plt.close(fig)
    rec = report.as_record()
    path = run.record(**rec)
    assert path.exists() and rec["metrics"]["test"]["auc"] == m["auc"]


def test_operating_point_counts_and_marker():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    s = np.array([0.1, 0.4, 0.6, 0.7, 0.3, 0.9, 0.8, 0.2])  # positive-class scores
    fig = viz.operating_point(y, s, ["normal", "pneumonia"], "binary-class", threshold=0.5)
    roc, cm_ax = fig.axes[:2]
    marker = roc.lines[-1]
    assert marker.get_xdata()[0] == pytest.approx(1 / 4) and marker.get_ydata()[0] == pytest.approx(3 / 4)
    assert [t.get_text().split("\n")[0] for t in cm_ax.texts] == ["3", "1", "1", "3"]  # tn fp / fn tp
    assert "sensitivity 0.750, specificity 0.750" in fig._suptitle.get_text()
    plt.close(fig)


def test_operating_point_explorer_is_static_when_headless(monkeypatch):
    monkeypatch.setenv("MEDLIB_HEADLESS", "1")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    s = rng.dirichlet(np.ones(3), 60)
    out = viz.operating_point_explorer(y, s, ["a", "b", "c"], "multi-class", threshold=0.3)
    assert isinstance(out, plt.Figure) and "threshold 0.30" in out._suptitle.get_text()
    plt.close(out)
