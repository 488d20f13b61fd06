"""The one place that makes overcooked-ai 1.1.0 importable under numpy 2.

overcooked-ai 1.1.0 (the last PyPI release) still writes ``np.Inf`` (planners, agents, env) and
``np.int`` (layout generator), aliases numpy 2 removed. Rather than pin the whole project to
numpy 1, we restore exactly those aliases, with their numpy-1 values, before the first import
of ``overcooked_ai_py``. Every module of this family imports the engine through here.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np

# numpy-1 alias -> the value it had (np.Inf is np.inf; np.int/np.float/np.bool were the builtins)
_REMOVED_ALIASES = {"Inf": np.inf, "NaN": np.nan, "int": int, "float": float, "bool": bool}
for _name, _value in _REMOVED_ALIASES.items():
    if not hasattr(np, _name):
        setattr(np, _name, _value)

# overcooked_ai_py/__init__.py imports the unmaintained ``gym`` only to register a gym id we do not
# use; gym prints a numpy-2 banner on import, which we keep off the user's terminal.
with contextlib.redirect_stderr(io.StringIO()):
    import overcooked_ai_py  # noqa: E402,F401

from overcooked_ai_py.mdp.actions import Action, Direction  # noqa: E402
from overcooked_ai_py.mdp.overcooked_mdp import OvercookedGridworld, OvercookedState, Recipe  # noqa: E402
from overcooked_ai_py.planning.planners import MotionPlanner  # noqa: E402

__all__ = ["Action", "Direction", "MotionPlanner", "OvercookedGridworld", "OvercookedState", "Recipe"]
