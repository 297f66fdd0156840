"""hjplug.modules — the HJ step nn.Modules recognised blocks become (`.spec`, `.epsilon`)."""

from hjplug.modules.activation import HJActivationStep, deformed_activation
from hjplug.modules.attention import HJAttentionStep, gibbs_attention
from hjplug.modules.base import HJStep, tropical_softmax
from hjplug.modules.converted import HJModule
from hjplug.modules.lse import HJLSEStep
from hjplug.modules.recurrent import HJRecurrentStep
from hjplug.modules.residual import HJResidualStep
from hjplug.modules.ssm import HJSSMStep

__all__ = [
    "HJActivationStep",
    "HJAttentionStep",
    "HJLSEStep",
    "HJModule",
    "HJRecurrentStep",
    "HJResidualStep",
    "HJSSMStep",
    "HJStep",
    "deformed_activation",
    "gibbs_attention",
    "tropical_softmax",
]
