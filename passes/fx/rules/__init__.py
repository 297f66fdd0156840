"""The FX rules, one per file, and the explicit ordered default tuple.

Order matters: a rule claims the nodes of its matches, later rules skip claimed nodes
(attention claims its softmax before `lse` sees it; recurrent/ssm claim their gates and Δ before
`activation` does).
"""

from hjplug.passes.fx.rules.activation import RULE as ACTIVATION
from hjplug.passes.fx.rules.attention import RULE as ATTENTION
from hjplug.passes.fx.rules.lse import RULE as LSE
from hjplug.passes.fx.rules.recurrent import RULE as RECURRENT
from hjplug.passes.fx.rules.residual import RULE as RESIDUAL
from hjplug.passes.fx.rules.ssm import RULE as SSM

DEFAULT_RULES = (ATTENTION, RECURRENT, SSM, RESIDUAL, LSE, ACTIVATION)

__all__ = ["ACTIVATION", "ATTENTION", "DEFAULT_RULES", "LSE", "RECURRENT", "RESIDUAL", "SSM"]
