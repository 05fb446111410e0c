"""Every MedMNIST dataset and its facts, built from the medmnist package's INFO (not retyped).

Explained in chapter 00 (data tour).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

TASKS = ("binary-class", "multi-class", "multi-label, binary-class", "ordinal-regression")


@dataclass(frozen=True)
class DatasetInfo:
    flag: str  # e.g. "pneumoniamnist"
    title: str  # e.g. "PneumoniaMNIST"
    dim: int  # 2 or 3
    task: str  # one of TASKS
    labels: tuple[str, ...]  # label names, index = class id
    n_channels: int
    n_samples: dict  # {"train": n, "val": n, "test": n}
    sizes: tuple[int, ...]  # image sizes offered: 28/64/128/224 (2D) or 28/64 (3D)
    license: str
    description: str
    _raw: dict

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def n_outputs(self) -> int:
        """Logits the model emits: one per label (multi-label) or per class."""
        return self.n_classes

    @property
    def multilabel(self) -> bool:
        return self.task == "multi-label, binary-class"

    def _suffix(self, size: int) -> str:
        if size not in self.sizes:
            raise ValueError(f"{self.flag} has no size {size}; valid sizes: {list(self.sizes)}")
        return "" if size == 28 else f"_{size}"

    def filename(self, size: int = 28) -> str:
        return f"{self.flag}{self._suffix(size)}.npz"

    def url(self, size: int = 28) -> str:
        return self._raw[f"url{self._suffix(size)}"]

    def md5(self, size: int = 28) -> str:
        return self._raw[f"MD5{self._suffix(size)}"]

    @cached_property
    def modality(self) -> str:
        return MODALITY.get(self.flag, "")


# Modality is not a field of INFO; one short phrase per dataset from its description.
MODALITY = {
    "pathmnist": "colon pathology (H&E)",
    "chestmnist": "chest X-ray",
    "dermamnist": "dermatoscopy",
    "octmnist": "retinal OCT",
    "pneumoniamnist": "chest X-ray (paediatric)",
    "retinamnist": "fundus photography",
    "breastmnist": "breast ultrasound",
    "bloodmnist": "blood cell microscopy",
    "tissuemnist": "kidney cortex microscopy",
    "organamnist": "abdominal CT (axial)",
    "organcmnist": "abdominal CT (coronal)",
    "organsmnist": "abdominal CT (sagittal)",
    "organmnist3d": "abdominal CT volume",
    "nodulemnist3d": "chest CT volume (lung nodule)",
    "adrenalmnist3d": "abdominal CT volume (adrenal shape)",
    "fracturemnist3d": "chest CT volume (rib fracture)",
    "vesselmnist3d": "brain MRA volume (vessel shape)",
    "synapsemnist3d": "electron microscopy volume",
}


def _build() -> dict[str, DatasetInfo]:
    import medmnist
    from medmnist.info import INFO

    out = {}
    for flag, raw in INFO.items():
        cls = getattr(medmnist, raw["python_class"])
        labels = tuple(raw["label"][str(i)] for i in range(len(raw["label"])))
        out[flag] = DatasetInfo(
            flag=flag,
            title=raw["python_class"],
            dim=3 if flag.endswith("3d") else 2,
            task=raw["task"],
            labels=labels,
            n_channels=raw["n_channels"],
            n_samples=dict(raw["n_samples"]),
            sizes=tuple(cls.available_sizes),
            license=raw["license"],
            description=raw["description"],
            _raw=raw,
        )
    return out


_REGISTRY: dict[str, DatasetInfo] | None = None


def registry() -> dict[str, DatasetInfo]:
    """All MedMNIST datasets by flag (built lazily on first use)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _build()
    return _REGISTRY


def flags(dim: int | None = None) -> list[str]:
    """MedMNIST flags, optionally only the 2D (dim=2) or 3D (dim=3) ones."""
    return [f for f, i in registry().items() if dim is None or i.dim == dim]


def info(flag: str) -> DatasetInfo:
    reg = registry()
    if flag not in reg:
        raise ValueError(f"unknown dataset {flag!r}; valid choices: {', '.join(reg)}")
    return reg[flag]
