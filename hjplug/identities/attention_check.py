"""Check 5: a softmax attention head is a Hopf–Cole Gibbs average over key atoms.

Scores q_i·k_j/√d_h = x_i·(M x_j)/ε with M = W_Q W_Kᵀ, ε = √d_h; key j is the atom
y_j = 2t·M x_j, g_j = −t|M x_j|², and π_ij ∝ exp(−(g_j + |x_i − y_j|²/(4t))/ε). A causal mask
removes atoms j > i (g_j = +∞). Reference: torch's scaled_dot_product_attention (independent).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hjplug import math as hm
from hjplug.identities._data import randn, rel_err
from hjplug.identities.rows import VerifyRow


def check_attention(gen: torch.Generator) -> list[VerifyRow]:
    S, d_model, t = 16, 12, 0.7
    errs = {False: 0.0, True: 0.0}
    for d_head in (4, 8):
        X = randn(gen, S, d_model)  # token states [S, d_model]
        Wq, Wk, Wv = (randn(gen, d_model, d_head, scale=d_model**-0.5) for _ in range(3))
        q, k, v = X @ Wq, X @ Wk, X @ Wv  # [S, d_head]
        M = Wq @ Wk.T  # [d_model, d_model]
        atoms = X @ M.T  # row j = (M x_j)ᵀ, the LSE weight W_j    [S, d_model]
        y, g = hm.atoms_from_lse(atoms, torch.zeros(S, dtype=X.dtype), t)  # [S, d], [S]
        eps = math.sqrt(d_head)
        for causal in (False, True):
            ref = F.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=causal)[0]
            g_q = g.expand(S, S).clone()  # per-query initial data [S(query), S(key)]
            if causal:
                g_q = g_q.masked_fill(torch.ones(S, S, dtype=torch.bool).triu(1), float("inf"))
            pi = hm.heat_weights(X, y, g_q, t, eps)  # [S, S]
            errs[causal] = max(errs[causal], rel_err(pi @ v, ref))
    setting = f"S={S}, d_model={d_model}, d_head ∈ {4, 8}, ε=√d_head, t={t}"
    return [
        VerifyRow("softmax(QKᵀ/√d)V = Hopf–Cole Gibbs average", setting, errs[False], 1e-12),
        VerifyRow("causal mask = removed atoms (g_j = +∞)", setting, errs[True], 1e-12),
    ]
