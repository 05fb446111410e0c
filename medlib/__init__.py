"""medlib: the shared library of the medical-imaging deep-learning course.

Importing medlib has no side effects; call `medlib.setup(...)` at the top of a notebook.
"""

from medlib.config import PROFILES, Run, setup

__all__ = ["PROFILES", "Run", "setup"]
__version__ = "0.1.0"
