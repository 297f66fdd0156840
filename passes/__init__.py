"""hjplug.passes — capture, recognise and rewrite (import it as hjplug.passes, never `passes`)."""

from hjplug.passes.capture import Captured, CaptureError, NonFiniteInputError, capture
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.passes.fx.rewrite import rewrite
from hjplug.passes.fx.rules import DEFAULT_RULES
from hjplug.passes.fx.runner import Recognition, recognize

__all__ = [
    "DEFAULT_RULES",
    "CaptureError",
    "Captured",
    "Match",
    "NoMatch",
    "NonFiniteInputError",
    "Recognition",
    "Rewrite",
    "capture",
    "recognize",
    "rewrite",
]
