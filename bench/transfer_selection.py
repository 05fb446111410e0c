"""Chapter 06's fine-tuning recipe, chosen on VALIDATION (BreastMNIST, seed 0, 78 validation
images): learning rate and epochs per strategy after SimCLR (8 epochs on the pool of every 2D file
present) or supervised PneumoniaMNIST pretraining, and from scratch for reference. The log it
wrote is results/06_finetune_selection.log; bench/README.md (chapter 06) states the choices and
how noisy 78 images make them. The test split is never loaded here.

    python bench/transfer_selection.py simclr 0 8     # SimCLR (8 epochs), then the fine-tuning grid
    python bench/transfer_selection.py sup 0          # supervised pretraining, then the grid
    python bench/transfer_selection.py scratch 0      # chapter 01's recipe from scratch
    python bench/transfer_selection.py probe 0        # linear probe and freeze_early learning rates
"""

import sys
import time

import torch

from medlib import transfer as T
from medlib.data.batches import TensorLoader
from medlib.data.medmnist import load
from medlib.evaluation import evaluate
from medlib.recipes.classification import build_classifier, recipe, train_classifier
from medlib.train import Trainer

torch.set_num_threads(2)
br, pn, rt = (load(f, 28) for f in ("breastmnist", "pneumoniamnist", "retinamnist"))
mode, seed = sys.argv[1], int(sys.argv[2])
ep = int(sys.argv[3]) if len(sys.argv) > 3 else 0
ENC = {"simclr": "/tmp/enc_simclr.pt", "sup": "/tmp/enc_sup.pt"}


def ft(net, epochs, lr=None, strategy="full"):
    kw = recipe("standard", br.train, epochs)
    if lr:
        kw["lr"] = lr
    kw.update(T.prepare(net, strategy))
    t = time.time()
    h = train_classifier(net, br.train, br.val, seed=seed, progress=False, **kw)
    return evaluate(net, br.val, tta=True), time.time() - t, h.best_epoch


def grid(kind):
    for lr in (1e-3, 2e-3):
        for fte in (20, 40):
            for strat in ("full", "layerwise", "linear_probe"):
                net = build_classifier("compactresnet", br.info, 28, seed=seed)
                T.load_encoder(ENC[kind], net)
                v, t, b = ft(net, fte, lr, strat)
                print(kind, seed, lr, fte, strat, {k: round(x, 4) for k, x in v.items()}, round(t), b, flush=True)


if mode == "scratch":
    net = build_classifier("compactresnet", br.info, 28, seed=seed)
    print(mode, seed, *ft(net, None))
elif mode == "sup":
    src = build_classifier("compactresnet", pn.info, 28, seed=seed)
    t0 = time.time()
    train_classifier(src, pn.train, pn.val, seed=seed, progress=False, **recipe("standard", pn.train, ep or None))
    print("pretrain", time.time() - t0, evaluate(src, pn.val))
    T.save_encoder(ENC["sup"], src, {"source": "pneumoniamnist"})
    grid("sup")
elif mode == "simclr":
    pool = T.unlabelled_pool([br.train, pn.train, rt.train], 1, br.info)
    src = build_classifier("compactresnet", br.info, 28, seed=seed)
    step = T.SimCLRStep(T.SimCLR(src), T.simclr_augment(), temperature=0.5, lr=2e-3, seed=seed)
    t0 = time.time()
    h = Trainer(step, epochs=ep, progress=False).fit(TensorLoader(pool, 256, shuffle=True, drop_last=True, seed=seed))
    print("pretrain", time.time() - t0, h.epochs[-1])
    T.save_encoder(ENC["simclr"], src, {"source": "pool"})
    grid("simclr")
elif mode == "probe":
    for kind in ("simclr", "sup"):
        for strat, lrs in (("linear_probe", (1e-2, 3e-2, 1e-1)), ("freeze_early", (1e-3, 2e-3))):
            for lr in lrs:
                net = build_classifier("compactresnet", br.info, 28, seed=seed)
                T.load_encoder(ENC[kind], net)
                v, t, b = ft(net, 30, lr, strat)
                print(kind, strat, lr, round(v["auc"], 4), round(v["acc"], 4), round(t), b, flush=True)
        net = build_classifier("compactresnet", br.info, 28, seed=seed)
        T.load_encoder(ENC[kind], net)
        tr, va = T.features(net, br.train), T.features(net, br.val)
        print(kind, "sklearn probe", T.probe(tr, br.train.labels.numpy(), va, br.val.labels.numpy(), br.info.task))
