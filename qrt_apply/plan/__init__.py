"""Planning: observe the runtime (``refresh``), then a pure diff (``diff``) into a frozen ``Plan``."""

from qrt_apply.plan.diff import make_plan
from qrt_apply.plan.model import Action, Change, Plan
from qrt_apply.plan.refresh import Observed, observe

__all__ = ["Action", "Change", "Observed", "Plan", "make_plan", "observe"]
