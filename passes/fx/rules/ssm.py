"""Rule `ssm`: selective scans (Mamba, Mamba2) and plain linear recurrences (RWKV-style decays).

    x' = Ā x + B̄ u,  Ā = exp(Δ A),  A = −exp(A_log) or −softplus(θ) (a learned stable decay)
    ℋ(x, p) = p·(A x + B u), deterministic (ε = 0); time step Δ (Mamba: Δ = softplus(·) = LSE₁)
Structural with an exact zero-order hold. Found by the decay A = −exp(parameter) (or −softplus)
in a module; Δ by a softplus in the same module; the ZOH by an exp whose input depends on Δ.
An exp of a softplus Δ with no such decay (a scan whose A the rule cannot read) is a near-miss.
"""

from __future__ import annotations

from torch import fx

from hjplug.passes.fx.context import RuleContext
from hjplug.passes.fx.graph import is_param, op_name, skip_passthrough
from hjplug.passes.fx.match import Match, NoMatch, Rewrite
from hjplug.spec import BlockKind, Exactness, Hamiltonian, HJSpec

NAME = "ssm"


_DECAY = {"exp", "softplus"}  # positive maps of a parameter; negated: a stable decay


def _is_decay(node: fx.Node) -> bool:
    """exp / softplus of a parameter, negated: A = −exp(A_log), A = −softplus(θ)."""
    if op_name(node) not in _DECAY or not is_param(skip_passthrough(node.args[0])):
        return False
    return any(op_name(u) == "neg" or (op_name(u) == "mul" and -1 in u.args) for u in node.users)


def _block(ctx: RuleContext, path: str, decays: list[fx.Node]) -> Match:
    prefix = f"{path}." if path else ""
    subtree = [n for p, ns in ctx.index.regions.items()
               if p == path or p.startswith(prefix) for n in ns]
    deltas = [n for n in subtree if op_name(n) == "softplus" and n not in ctx.claimed
              and n not in decays]
    zoh = [n for n in subtree if op_name(n) == "exp" and n not in decays
           and any(ctx.index.depends_on(n, d) for d in deltas)]
    selective = bool(deltas)
    spec = HJSpec(
        path=path or "(root)", kind=BlockKind.SSM,
        hamiltonian=Hamiltonian("ℋ(x, p) = p·(A x + B u), A = −exp(A_log); Ā = exp(ΔA)",
                                {"selective": selective, "scan_steps": len(zoh) or None}),
        epsilon=0.0,
        time_step="Δ = softplus(·) per token and channel" if selective else 1.0,
        exactness=Exactness.STRUCTURAL,
        evidence=tuple(dict.fromkeys(x for x in (
            *(f"aten.{op_name(d)}" for d in decays), "aten.neg", "aten.exp" if zoh else "",
            "aten.softplus" if selective else "", ctx.index.classes.get(path, "")) if x)),
        notes="zero-order hold Ā = exp(ΔA) exact" if zoh else "linear recurrence with decay "
              "w = −exp(θ) (time step 1 per token)",
    )
    rewrites = [Rewrite(n, tuple(n.args), {"role": "delta"}) for n in deltas]
    rewrites += [Rewrite(n, tuple(n.args), {"role": "zoh"}) for n in zoh]
    rewrites += [Rewrite(n, tuple(n.args), {"role": "decay"}) for n in decays]
    targets = {"delta": deltas[0].target if deltas else None,
               "zoh": zoh[0].target if zoh else None, "decay": decays[0].target}

    def make(s: HJSpec):
        from hjplug.modules.ssm import HJSSMStep

        return HJSSMStep(s, targets=targets)

    claims = frozenset([*deltas, *zoh, *decays])
    return Match(NAME, spec, decays[0], claims, tuple(rewrites), make)


class SSMRule:
    name = NAME

    def scan(self, ctx: RuleContext) -> list[Match | NoMatch]:
        by_path: dict[str, list[fx.Node]] = {}
        out: list[Match | NoMatch] = []
        for path, nodes in ctx.index.regions.items():
            for n in nodes:
                if op_name(n) not in _DECAY or n in ctx.claimed:
                    continue
                if _is_decay(n):
                    by_path.setdefault(path, []).append(n)
                elif op_name(n) == "exp" and is_param(skip_passthrough(n.args[0])):
                    why = "exp(parameter) not negated: not a stable decay A = −exp(·)"
                    out.append(NoMatch(NAME, n.name, path, why))
        for path, decays in by_path.items():
            m = _block(ctx, path, decays)
            ctx.claimed.update(m.claims)
            out.append(m)
        return out + _unread_scans(ctx)


def _unread_scans(ctx: RuleContext) -> list[NoMatch]:
    """A near-miss per module with exp(…) of a softplus Δ that no block claimed: a selective-scan
    ZOH exp(Δ·A) whose decay A is in no form the rule reads."""
    out: list[NoMatch] = []
    for path, nodes in ctx.index.regions.items():
        deltas = [n for n in nodes if op_name(n) == "softplus" and n not in ctx.claimed]
        exps = [n for n in nodes if op_name(n) == "exp" and n not in ctx.claimed
                and any(ctx.index.depends_on(n, d) for d in deltas)]
        if exps:
            out.append(NoMatch(NAME, exps[0].name, path or "(root)",
                               f"{len(exps)} exp(·) of a softplus time step Δ (a selective-scan "
                               "zero-order hold exp(Δ·A)?) but no decay A = −exp(θ) or "
                               "−softplus(θ) of a parameter in this module: not read as an SSM"))
    return out


RULE = SSMRule()

