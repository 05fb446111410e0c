"""The wall around the test set: a split that stays sealed until a run's final evaluation.

Every loader returns its test split wrapped in `HeldOut`. Its size and class counts can be
read (facts about the data), but its images and labels cannot until it is opened, and a run
opens it with `run.open_test(data)` — the last step of a chapter, after every choice
(epochs, thresholds, recipe knobs, ablation winners) was made on validation. Opening is
recorded in results.json, and a run refuses to build models after it.
"""

from __future__ import annotations

from typing import Any

_ALLOWED = ("info", "name")


class TestSetSealed(RuntimeError):
    """The test split was used before the final evaluation."""

    __test__ = False  # an exception, not a pytest test class


class HeldOut:
    """A sealed split: `len()`, `.info`, `.name` and `.class_counts()` only, until `open()`."""

    __test__ = False  # not a pytest test class, despite the name of its module's subject

    def __init__(self, split: Any, name: str = "test"):
        object.__setattr__(self, "_split", split)
        object.__setattr__(self, "name", name)

    def __len__(self) -> int:
        return len(self._split)

    def class_counts(self):
        """Images per class (or per label): a fact about the split, not a result."""
        if not hasattr(self._split, "class_counts"):
            raise AttributeError(f"this {self.name} split has no class counts")
        return self._split.class_counts()

    def open(self, purpose: str):
        """The underlying split. Call it through `run.open_test(data)`, which records it."""
        if not isinstance(purpose, str) or not purpose.strip():
            raise ValueError("open(purpose=...) needs a purpose, e.g. 'final evaluation'")
        return self._split

    def __getattr__(self, attr: str):
        if attr in _ALLOWED:
            return getattr(self._split, attr)
        raise TestSetSealed(
            f"the {self.name} split is sealed: '.{attr}' is not available before the final evaluation. "
            "Make every choice (epochs, thresholds, models, ablations) on the validation split; evaluate "
            "on test once, at the end of the run, with run.open_test(data) or a medlib.evaluation "
            "function. Its size and class counts can be read without opening it.")

    def __setattr__(self, attr, value):
        raise TestSetSealed(f"the {self.name} split is sealed and read-only")

    def __repr__(self) -> str:
        return f"HeldOut({self.name!r}, {len(self)} items, sealed)"


def refuse_sealed(*splits: Any, use: str = "training or model selection") -> None:
    """Raise TestSetSealed if any of `splits` is a sealed test split (clear error, early)."""
    for s in splits:
        if isinstance(s, HeldOut):
            raise TestSetSealed(f"the {s.name} split is sealed and cannot be used for {use}: use the validation "
                                "split; the test split is opened once, at the end, by run.open_test(data)")

