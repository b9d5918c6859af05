"""Architecture formulas of the Step Law runs: non-embedding parameters and training tokens."""

from __future__ import annotations

import numpy as np


def non_embedding_params(
    d_model,
    d_ff,
    n_layers,
    n_experts=None,
    top_k=None,
    d_expert=None,
    d_shared_expert=None,
    n_dense_layers=None,
) -> tuple[np.ndarray, np.ndarray]:
    """Non-embedding parameter count, total and active, of the Step Law architectures.

    Dense::

        N = n_layers * (4 * d_model**2 + 3 * d_model * d_ff)

    (Q, K, V and output projections of ``d_model x d_model``; a gated (SwiGLU) FFN of three
    ``d_model x d_ff`` matrices; embeddings, norms and biases left out). It reproduces the
    ``N`` column of every row of the released ``dense_lr_bs_loss.csv``.

    MoE (with ``n_experts`` given)::

        N        = n_layers * 4 * d_model**2 + n_dense_layers * 3 * d_model * d_ff
                   + (n_layers - n_dense_layers) * 3 * d_model * (n_experts * d_expert
                                                                 + d_shared_expert)
        N_active = the same with top_k in place of n_experts

    (router weights left out); it reproduces ``N`` and ``Na`` of every row of the released
    ``moe_lr_bs_loss.csv``. Arguments broadcast; NaN for MoE entries means a dense row.

    Returns
    -------
    N, N_active : numpy.ndarray of float64
    """
    h = np.asarray(d_model, dtype=np.float64)
    f = np.asarray(d_ff, dtype=np.float64)
    layers = np.asarray(n_layers, dtype=np.float64)
    dense = layers * (4.0 * h * h + 3.0 * h * f)
    if n_experts is None:
        return dense, dense.copy()
    experts = np.asarray(n_experts, dtype=np.float64)
    k = np.asarray(top_k, dtype=np.float64)
    de = np.asarray(d_expert, dtype=np.float64)
    ds = np.asarray(d_shared_expert, dtype=np.float64)
    ld = np.asarray(n_dense_layers, dtype=np.float64)
    base = layers * 4.0 * h * h + ld * 3.0 * h * f
    moe_layers = (layers - ld) * 3.0 * h
    total = base + moe_layers * (experts * de + ds)
    active = base + moe_layers * (k * de + ds)
    is_moe = ~np.isnan(experts)
    return np.where(is_moe, total, dense), np.where(is_moe, active, dense)


def training_tokens(iterations, batch_sequences, seq_len, sig_figs: int | None = 3) -> np.ndarray:
    """Training tokens ``D = iterations * batch_sequences * seq_len``, optionally rounded.

    The released data's ``D`` is the nominal token budget: for every released dense and MoE
    row it equals this product rounded to 3 significant figures (the runs' iteration counts
    are whole steps, so the product is off the budget by up to 0.22%). Rounding the same way
    keeps runs of one budget in one setting; ``sig_figs=None`` gives the exact product.
    """
    d = (
        np.asarray(iterations, dtype=np.float64)
        * np.asarray(batch_sequences, dtype=np.float64)
        * np.asarray(seq_len, dtype=np.float64)
    )
    if sig_figs is None:
        return d
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 10.0 ** (np.floor(np.log10(np.abs(d))) - (sig_figs - 1))
        rounded = np.round(d / scale) * scale
    return np.where(np.isfinite(rounded) & (d > 0), rounded, d)
