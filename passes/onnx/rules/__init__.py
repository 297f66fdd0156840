"""The ONNX rules, one per file, and the explicit ordered default tuple.

Order matters: a rule claims the nodes of its matches and later rules skip claimed nodes
(hjplug calls first; attention claims its softmax and mask adds before `lse` and `residual`;
`ssm` claims a scan's state-update adds before `residual` sees them).
"""

from hjplug.passes.onnx.rules.attention_chain import RULE as ATTENTION
from hjplug.passes.onnx.rules.attention_op import RULE as ATTENTION_OP
from hjplug.passes.onnx.rules.contrib_attention import RULE as CONTRIB_ATTENTION
from hjplug.passes.onnx.rules.hjplug_call import RULE as HJPLUG_CALL
from hjplug.passes.onnx.rules.lse import RULE as LSE
from hjplug.passes.onnx.rules.recurrent import RULE as RECURRENT
from hjplug.passes.onnx.rules.residual import RULE as RESIDUAL
from hjplug.passes.onnx.rules.ssm import RULE as SSM

DEFAULT_RULES = (HJPLUG_CALL, ATTENTION, ATTENTION_OP, CONTRIB_ATTENTION, RECURRENT, SSM, LSE,
                 RESIDUAL)

__all__ = ["ATTENTION", "ATTENTION_OP", "CONTRIB_ATTENTION", "DEFAULT_RULES", "HJPLUG_CALL",
           "LSE", "RECURRENT", "RESIDUAL", "SSM"]
