"""DRAFT generator for notebooks/solutions/08_hybrids.ipynb (issue 16)."""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
from nbgen import build  # noqa: E402

C = []


def md(s):
    C.append(("md", s))


def code(s):
    C.append(("code", s))


md(r"""
# Chapter 08 — worked solutions

Solutions of the five exercises of `notebooks/08_hybrids.ipynb`, one section each. Run it top to
bottom (`smoke`: tiny subsets and budgets, whose numbers only show that the code runs;
`standard`: a few minutes on 2 CPU cores, one seed — indicative, not a ranking). No exercise
opens a test split: everything is measured on validation images.
""")

C.append(("params", r"""
# Parameters (papermill overrides this cell)
profile = None          # None -> $MEDLIB_PROFILE, else "standard"
seed = 0
device = "auto"         # "auto" picks cuda > mps > cpu
"""))

code(r"""
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from IPython.display import display
from sklearn.inspection import permutation_importance

import medlib
from medlib import chapters
from medlib import features as hf
from medlib.data.medmnist import load
from medlib.evaluation import predict
from medlib.metrics import classification as mc
from medlib.models.hybrid import TransUNet, conv_stem_vit
from medlib.recipes import hybrids as rh

run = medlib.setup("08_solutions", profile=profile, seed=seed, device=device, dataset="pneumoniamnist", size=28,
                   defaults=rh.CHAPTER_BUDGETS, **chapters.spec("08_hybrids"))
t0 = time.perf_counter()
data = load(run.dataset, run.size, root=run.data_dir)
info = data.info
train, val = data.train.subset(run.max_train, seed), data.val.subset(run.max_eval, seed)
y_train, y_val = rh.labels_of(train), rh.labels_of(val)
EPOCHS = rh.epochs_for(train, run.cfg.get("images"), run.epochs)
X_train, names = rh.split_features(train)
X_val, _ = rh.split_features(val)
""")

md(r"""
## Exercise 1 — the GLCM at distance 2
""")

code(r"""
def glcm_by_hand(q, offset, levels):  # as in the chapter
    P = np.zeros((levels, levels))
    H, W = q.shape
    dr, dc = offset
    for r in range(max(0, -dr), min(H, H - dr)):
        for c in range(max(0, -dc), min(W, W - dc)):
            P[q[r, c], q[r + dr, c + dc]] += 1
    P = P + P.T
    return P / P.sum()


img = train.images[0, 0].numpy()
q = hf.quantize(img, 8)
i, j = np.indices((8, 8))
contrasts = [(glcm_by_hand(q, off, 8) * (i - j) ** 2).sum() for off in hf.directions(2, distance=2)]
ex1 = float(np.mean(contrasts))
assert np.isclose(ex1, hf.glcm_features(img, levels=8, distance=2)["glcm_contrast"])
print(f"mean contrast over {hf.directions(2, 2)}: {ex1:.3f} == medlib's glcm_contrast at distance 2")
""")

md(r"""
## Exercise 2 — which features matter (permutation importance on validation)
""")

code(r"""
LEARNER = max(("gbm", "logistic"), key=lambda k: mc.auc(y_val, rh.fit_scores(rh.feature_learner(k, seed), X_train, y_train,
                                                                             X_val)[0], info.task))
learner = rh.feature_learner(LEARNER, seed).fit(X_train, y_train)
imp = permutation_importance(learner, X_val, y_val, scoring="roc_auc", n_repeats=5, random_state=seed)
ex2 = pd.DataFrame({"importance": imp.importances_mean, "sd": imp.importances_std, "family": [hf.family_of(n) for n in names]},
                   index=names).sort_values("importance", ascending=False)
display(ex2.head(10).round(4))
print("families of the top five:", ex2.head(5)["family"].value_counts().to_dict(),
      "- correlated features share their importance, so a family can matter more than its members look")
""")

md(r"""
## Exercise 3 — a deeper transformer after the stem
""")

code(r"""
ex3 = {}
for depth in (2, 4):
    kw = {**rh.HYBRID, "depth": depth}
    net = run.build(conv_stem_vit, info.n_channels, info.n_classes, run.size, label=f"hybrid depth {depth}", **kw)
    h = rh.train_network("conv-stem ViT", net, train, val, epochs=EPOCHS, device=run.device, seed=seed)
    ex3[f"{depth} blocks"] = {"parameters": sum(p.numel() for p in net.parameters()), "val AUC": h.best_score,
                              "train s": h.train_seconds}
display(pd.DataFrame(ex3).T.round(4))
""")

md(r"""
## Exercise 4 — how flat is the late-fusion curve?
""")

code(r"""
cnn = rh.build_network("CNN", info, run.size, run=run)
rh.train_network("CNN", cnn, train, val, epochs=EPOCHS, device=run.device, seed=seed)
p_cnn = predict(cnn, val, run.device)
(p_feat,) = rh.fit_scores(rh.feature_learner(LEARNER, seed), X_train, y_train, X_val)
W, curve = rh.late_fusion_weight(p_cnn, p_feat, y_val, info.task, info.n_classes)
lo, hi = mc.bootstrap_ci(lambda a, b: mc.auc(a, b, info.task), y_val, W * p_cnn + (1 - W) * p_feat, n=run.bootstrap, seed=seed)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(list(curve), list(curve.values()), "o-")
ax.axhspan(lo, hi, alpha=0.2, label="bootstrap 95% CI at the chosen w")
ax.set(xlabel="w (weight of the CNN)", ylabel="validation AUC", title=f"chosen w = {W:.2f}")
ax.legend(fontsize=8)
run.savefig(fig, "ex4_late_weight")
plt.show()
ex4 = {"w": W, "auc_range": max(curve.values()) - min(curve.values()), "ci_width": hi - lo}
print(f"AUC over w spans {ex4['auc_range']:.3f}; the CI at the chosen w is {ex4['ci_width']:.3f} wide: "
      "weights whose AUC lies inside it are not distinguishable on these images")
""")

md(r"""
## Exercise 5 — positions at another size (a small TransUNet on DSB2018-96)
""")

code(r"""
from medlib.data.segmentation import load_segmentation
from medlib.recipes import segmentation as rs

seg = load_segmentation("dsb2018_96", run.data_dir)
SREC = rs.defaults(seg.name)[run.profile]
tu = run.build(TransUNet, seg.in_channels, seg.out_channels, width=SREC["width"], depth=SREC["depth"], base_size=96,
               label="TransUNet", **rh.TRANSUNET)
rs.train_segmenter(tu, seg, seg.train.subset(SREC["n_train"]), seg.val.subset(SREC.get("n_val")), SREC,
                   device=run.device, seed=seed)
v = seg.val.subset(SREC.get("n_val"))
with torch.no_grad():
    tu.eval()
    x = seg.normalize(v.images.to(run.device))
    p1 = torch.sigmoid(tu(x))[:, 0]
    p2 = F.interpolate(torch.sigmoid(tu(F.interpolate(x, scale_factor=2, mode="bilinear"))), scale_factor=0.5,
                       mode="bilinear")[:, 0]
truth = v.masks > 0


def dice(p):  # pooled Dice of the thresholded probabilities
    pred = p >= 0.5
    return float(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))


ex5 = {"dice at 96 px": dice(p1), "dice at 192 px, back to 96": dice(p2)}
print(ex5, "- the positions stretch to a 24 x 24 grid, but every convolution now sees half the context it learned with")
""")

code(r"""
run.record({"val": {"glcm_contrast_d2": ex1, "top_features": ex2.head(5).index.tolist(), "depth": ex3, "late_weight": ex4,
                    "transunet_sizes": ex5}}, notebook_seconds=time.perf_counter() - t0)
print(f"solutions ran in {time.perf_counter() - t0:.0f} s")
""")

build(C, __import__("os").path.join(__import__("os").path.dirname(__file__), "../../notebooks/solutions/08_hybrids.ipynb"), "hybrids-sol")
print("written")
