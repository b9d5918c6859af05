"""Simulated sweeps with a known law: the ground truth for recovery and coverage checks.

Each setting's optimum follows the hierarchical Step Law with known exponents, group offsets
and setting effects; each run's loss comes from a bowl around that optimum,

    loss = L*(N, D) · (1 + q(x, y)) · (1 + noise),   x = ln lr − ln lr*,  y = ln B − ln B*,
    q = a·x² + b·y² + 2h·x·y   (a → a·asymmetry for x > 0: the high-lr side rises faster),

evaluated on the released data's grids (lr = 2^(-k/2), batch = 2048·2^(j/2) tokens) within a
window around the optimum, so the plateau filter sees what it sees on real sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .sweeps import read_sweeps


@dataclass(frozen=True)
class TrueLaw:
    """Parameters of a simulated Step Law (natural-log scale, centred at N0, D0)."""

    c: float = float(np.log(1.2e-3))
    alpha: float = -0.7
    beta: float = 0.3
    d: float = float(np.log(1.5e6))
    gamma: float = 0.55
    delta: float = 0.0
    log_n0: float = float(np.log(5e8))
    log_d0: float = float(np.log(2e10))
    offsets_lr: dict[str, float] = field(default_factory=lambda: {"dense": -0.1, "moe": 0.1})
    offsets_bs: dict[str, float] = field(default_factory=lambda: {"dense": 0.08, "moe": -0.08})
    sigma_setting_lr: float = 0.05
    sigma_setting_bs: float = 0.1

    def optimum(self, N, D, group: str = "dense") -> tuple[np.ndarray, np.ndarray]:
        """Law optimum (lr, batch tokens) of a group, without setting effects."""
        x = np.log(N) - self.log_n0
        y = np.log(D) - self.log_d0
        parts = group.split("/")
        paths = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        off_lr = sum(self.offsets_lr.get(p, 0.0) for p in paths)
        off_bs = sum(self.offsets_bs.get(p, 0.0) for p in paths)
        lr = np.exp(self.c + self.alpha * x + self.beta * y + off_lr)
        bs = np.exp(self.d + self.gamma * y + self.delta * x + off_bs)
        return lr, bs


@dataclass(frozen=True)
class Bowl:
    """Shape of the simulated loss landscape around each optimum."""

    a: float = 0.012
    b: float = 0.008
    h: float = -0.004
    asymmetry: float = 1.0
    noise: float = 0.0004
    lr_window: float = 1.6  # ln-units either side of the optimum covered by the lr grid
    bs_window: float = 1.6


DEFAULT_SETTINGS = pd.DataFrame(
    [("dense", "dense", n, d) for n in (2e8, 5e8, 1.2e9) for d in (5e9, 2e10, 8e10)]
    + [("moe", "moe", 2e9, d) for d in (4e9, 2e10)],
    columns=["family", "variant", "N", "D"],
)


def loss_floor(N, D) -> np.ndarray:
    """A Chinchilla-shaped best loss L*(N, D)."""
    return 1.7 + 406.4 / np.power(N, 0.34) + 410.7 / np.power(D, 0.28)


def simulate_sweeps(
    settings: pd.DataFrame | None = None,
    law: TrueLaw | None = None,
    bowl: Bowl | None = None,
    seed: int = 0,
    seq_len: int = 2048,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a sweep table from a known law.

    Parameters
    ----------
    settings : DataFrame, optional
        One row per setting with ``family``, ``variant``, ``N``, ``D`` (and optionally
        ``recipe``); default: 9 dense settings and 2 MoE settings.
    law, bowl : optional
        The true law and loss landscape.
    seed : int
        Seed of the setting effects and loss noise.
    seq_len : int
        Sequence length of every run.

    Returns
    -------
    sweeps : DataFrame
        In the package schema (validated by :func:`read_sweeps`).
    truth : DataFrame
        One row per setting: ``setting``, the true optimum ``lr_opt``, ``batch_tokens_opt``
        (setting effects included) and the law optimum without them.
    """
    settings = DEFAULT_SETTINGS if settings is None else settings
    law = law or TrueLaw()
    bowl = bowl or Bowl()
    rng = np.random.default_rng(seed)
    n_set = len(settings)
    groups = [f"{f}/{v}" if v != f else f for f, v in zip(settings["family"], settings["variant"])]
    law_lr, law_bs = zip(
        *(law.optimum(n, d, g) for n, d, g in zip(settings["N"], settings["D"], groups))
    )
    log_lr_opt = np.log(law_lr) + law.sigma_setting_lr * rng.standard_normal(n_set)
    log_bs_opt = np.log(law_bs) + law.sigma_setting_bs * rng.standard_normal(n_set)
    lr_grid = -np.arange(8, 30) / 2 * np.log(2)  # ln lr on 2^(-k/2)
    bs_grid = np.log(seq_len) + np.arange(0, 24) / 2 * np.log(2)  # ln tokens on 2048*2^(j/2)
    frames = []
    for i, row in enumerate(settings.itertuples(index=False)):
        x = lr_grid[np.abs(lr_grid - log_lr_opt[i]) <= bowl.lr_window] - log_lr_opt[i]
        y = bs_grid[np.abs(bs_grid - log_bs_opt[i]) <= bowl.bs_window] - log_bs_opt[i]
        xx, yy = (g.ravel() for g in np.meshgrid(x, y, indexing="ij"))
        a = np.where(xx > 0, bowl.a * bowl.asymmetry, bowl.a)
        q = a * xx**2 + bowl.b * yy**2 + 2 * bowl.h * xx * yy
        best = loss_floor(row.N, row.D)
        loss = best * (1 + q) * (1 + bowl.noise * rng.standard_normal(q.shape))
        frame = pd.DataFrame(
            {
                "N": float(row.N),
                "D": float(row.D),
                "lr": np.exp(xx + log_lr_opt[i]),
                "batch_tokens": np.round(np.exp(yy + log_bs_opt[i])),
                "seq_len": seq_len,
                "loss": loss,
                "family": row.family,
                "variant": row.variant,
            }
        )
        if "recipe" in settings:
            frame["recipe"] = row.recipe
        frames.append(frame)
    raw = pd.concat(frames, ignore_index=True)
    raw["batch_sequences"] = raw["batch_tokens"] / seq_len
    sweeps = read_sweeps(raw.drop(columns=["batch_tokens"]))
    truth = settings.reset_index(drop=True).assign(
        lr_opt=np.exp(log_lr_opt),
        batch_tokens_opt=np.exp(log_bs_opt),
        lr_law=np.asarray(law_lr),
        batch_tokens_law=np.asarray(law_bs),
    )
    key = sweeps.drop_duplicates(["family", "variant", "N", "D"])
    truth = truth.merge(key[["family", "variant", "N", "D", "setting"]], how="left")
    return sweeps, truth
