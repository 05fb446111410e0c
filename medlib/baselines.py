"""Published baselines as data, each table with its source, so that any chapter can put
"paper" beside "ours". Transcribed from the papers; keep each citation with its table."""

from __future__ import annotations

# Test AUC / ACC from Yang et al., "MedMNIST v2 - A large-scale lightweight benchmark for 2D
# and 3D biomedical image classification", Scientific Data 10:41 (2023), Tables 3-4;
# transcribed from the paper, keep this citation with the table.
MEDMNIST_V2_SOURCE = "Yang et al., MedMNIST v2, Scientific Data 10:41 (2023), https://doi.org/10.1038/s41597-022-01721-8"

_COLS_2D = ["pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
            "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"]
_ROWS_2D = {
    "ResNet-18 (28)": ".983/.907 .768/.947 .917/.735 .943/.743 .944/.854 .717/.524 .901/.863 .998/.958 .930/.676 .997/.935 .992/.900 .972/.782",
    "ResNet-18 (224)": ".989/.909 .773/.947 .920/.754 .958/.763 .956/.864 .710/.493 .891/.833 .998/.963 .933/.681 .998/.951 .994/.920 .974/.778",
    "ResNet-50 (28)": ".990/.911 .769/.947 .913/.735 .952/.762 .948/.854 .726/.528 .857/.812 .997/.956 .931/.680 .997/.935 .992/.905 .972/.770",
    "ResNet-50 (224)": ".989/.892 .773/.948 .912/.731 .958/.776 .962/.884 .716/.511 .866/.842 .997/.950 .932/.680 .998/.947 .993/.911 .975/.785",
    "auto-sklearn": ".934/.716 .649/.779 .902/.719 .887/.601 .942/.855 .690/.515 .836/.803 .984/.878 .828/.532 .963/.762 .976/.829 .945/.672",
    "AutoKeras": ".959/.834 .742/.937 .915/.749 .955/.763 .947/.878 .719/.503 .871/.831 .998/.961 .941/.703 .994/.905 .990/.879 .974/.813",
    "Google AutoML Vision": ".944/.728 .778/.948 .914/.768 .963/.771 .991/.946 .750/.531 .919/.861 .998/.966 .924/.673 .990/.886 .988/.877 .964/.749",
}
_COLS_3D = ["organmnist3d", "nodulemnist3d", "fracturemnist3d", "adrenalmnist3d", "vesselmnist3d", "synapsemnist3d"]
_ROWS_3D = {
    "ResNet-18+2.5D": ".977/.788 .838/.835 .587/.451 .718/.772 .748/.846 .634/.696",
    "ResNet-18+3D": ".996/.907 .863/.844 .712/.508 .827/.721 .874/.877 .820/.745",
    "ResNet-18+ACS": ".994/.900 .873/.847 .714/.497 .839/.754 .930/.928 .705/.722",
    "ResNet-50+2.5D": ".974/.769 .835/.848 .552/.397 .732/.763 .751/.877 .669/.735",
    "ResNet-50+3D": ".994/.883 .875/.847 .725/.494 .828/.745 .907/.918 .851/.795",
    "ResNet-50+ACS": ".994/.889 .886/.841 .750/.517 .828/.758 .912/.858 .719/.709",
    "auto-sklearn": ".977/.814 .914/.874 .628/.453 .828/.802 .910/.915 .631/.730",
    "AutoKeras": ".979/.804 .844/.834 .642/.458 .804/.705 .773/.894 .538/.724",
}


def _parse(cols, rows) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {c: {} for c in cols}
    for model, cells in rows.items():
        for col, cell in zip(cols, cells.split(), strict=True):
            a, b = cell.split("/")
            out[col][model] = {"auc": float(a), "acc": float(b)}
    return out


MEDMNIST_V2 = {**_parse(_COLS_2D, _ROWS_2D), **_parse(_COLS_3D, _ROWS_3D)}


def medmnist_baselines(flag: str) -> dict[str, dict[str, float]]:
    """All published MedMNIST v2 rows for a dataset: {model: {"auc":..., "acc":...}}."""
    if flag not in MEDMNIST_V2:
        raise ValueError(f"no MedMNIST v2 baselines for {flag!r}; valid choices: {', '.join(MEDMNIST_V2)}")
    return MEDMNIST_V2[flag]


def medmnist_baseline(flag: str, model: str | None = None) -> dict[str, float]:
    """One row (default: ResNet-18 (28) for 2D, ResNet-18+3D for 3D)."""
    rows = medmnist_baselines(flag)
    model = model or ("ResNet-18+3D" if flag.endswith("3d") else "ResNet-18 (28)")
    if model not in rows:
        raise ValueError(f"unknown baseline {model!r}; valid choices: {', '.join(rows)}")
    return rows[model]


def best_baseline(flag: str) -> tuple[str, dict[str, float]]:
    """The best published AUC and the best published ACC (they may come from different rows)."""
    rows = medmnist_baselines(flag)
    return "best of v2", {k: max(r[k] for r in rows.values()) for k in ("auc", "acc")}


# DRIVE (Staal et al., IEEE TMI 2004): test set (images 01-20), inside the field of view,
# against 1st_manual. AUC is the pixel ROC AUC; F1 is the pooled Dice of all test pixels.
DRIVE_BASELINES = {
    "U-Net (Ronneberger 2015), as reported by Li et al. WACV 2020": {"auc_pooled": 0.9752},
    "IterNet (Li et al., WACV 2020)": {"auc_pooled": 0.9816, "dice_pooled": 0.8205},
    "retina-unet (orobix, GitHub)": {"auc_pooled": 0.9790},
}


# MedMNIST+ (Doerrich, Di Salvo, Brockmann, Ledig, "Rethinking model prototyping through the
# MedMNIST+ dataset collection", Scientific Reports 2025, arXiv 2404.15786): ImageNet-pretrained
# backbones at 28 px. Test ACC / AUC as quoted in this suite's chapter-07 and chapter-06 issues
# (from the paper's per-dataset tables); only the rows quoted there are transcribed.
MEDMNIST_PLUS_SOURCE = "Doerrich et al., Rethinking model prototyping through the MedMNIST+ dataset collection (2024), arXiv 2404.15786"
MEDMNIST_PLUS = {
    "pneumoniamnist": {"MedMNIST+: ViT-B/16 pretrained, end-to-end (28)": {"auc": 0.956, "acc": 0.837},
                       "MedMNIST+: DINO ViT-B/16, linear probe (28)": {"auc": 0.973, "acc": 0.866}},
    "breastmnist": {"MedMNIST+: AlexNet pretrained, end-to-end (28)": {"auc": 0.891, "acc": 0.865}},
}
# averages over MedMNIST+'s 12 2D datasets at 28 px, end-to-end training (same source)
MEDMNIST_PLUS_AVERAGE = {"ViT-B/16": {"auc": 0.905, "acc": 0.782}, "VGG16": {"auc": 0.927, "acc": 0.823}}


def medmnist_plus_baselines(flag: str) -> dict[str, dict[str, float]]:
    """The MedMNIST+ rows transcribed for a dataset ({} where none are)."""
    return dict(MEDMNIST_PLUS.get(flag, {}))
