"""hjplug.math — the specification: pure torch functions of paper-notes §1–§3, any float dtype."""

from hjplug.math.activations import sigmoid_gibbs, softplus_lse, tanh_gibbs
from hjplug.math.atoms import atoms_from_lse, lse_from_atoms, quadratic_form
from hjplug.math.bounds import gap_bound, top2_gap, uniform_bound
from hjplug.math.derivatives import (
    characteristic_field,
    entropy_eps_derivative,
    entropy_grad_x,
    hessian_bound,
    hessian_lse,
    hopf_cole_time_derivative,
    logits,
    lse_grad,
)
from hjplug.math.hopf_cole import atom_costs, heat_weights, hopf_cole, hopf_lax
from hjplug.math.lse import entropy, gibbs, log_gibbs, lse, lse_tropical, normalized_entropy

__all__ = [
    "atom_costs",
    "atoms_from_lse",
    "characteristic_field",
    "entropy",
    "entropy_eps_derivative",
    "entropy_grad_x",
    "gap_bound",
    "gibbs",
    "heat_weights",
    "hessian_bound",
    "hessian_lse",
    "hopf_cole",
    "hopf_cole_time_derivative",
    "hopf_lax",
    "log_gibbs",
    "logits",
    "lse",
    "lse_from_atoms",
    "lse_grad",
    "lse_tropical",
    "normalized_entropy",
    "quadratic_form",
    "sigmoid_gibbs",
    "softplus_lse",
    "tanh_gibbs",
    "top2_gap",
    "uniform_bound",
]
