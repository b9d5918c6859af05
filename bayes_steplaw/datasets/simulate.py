"""Simulated sweeps with a known truth: for recovery, coverage and design checks.

Each setting's optimum follows the hierarchical Step Law with known exponents, group offsets
and setting effects (:class:`TrueLaw`); each run's loss comes from a known loss surface around
that optimum (:class:`TrueSurface`), the loss model's own form (:mod:`bayes_steplaw.bayes.
surface`): a tilted, skewed valley, a Chinchilla-type best loss, run noise with upward spikes
away from the optimum, and divergence past an edge in lr. Which runs a setting has is the
*design*:

``"grid"``           every lr x batch of a grid (lr steps of √2, batch steps of 2) around the
                     optimum, as in the released sweeps;
``"one-at-a-time"``  a tuned baseline near the optimum, lr varied at the baseline batch and the
                     batch varied at the baseline lr, as in many labs' sweeps (and Marin's);
``"random"``         runs at log-uniform random (lr, batch) around the optimum (random search).

Each design identifies different things; ``tests/test_simulation.py`` shows which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .sweeps import read_sweeps

DESIGNS = ("grid", "one-at-a-time", "random")
"""The run designs :func:`simulate_sweeps` knows."""


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
class TrueSurface:
    """The loss surface around each optimum, the best loss, the noise and the divergence edge
    (the loss model's form; shape parameters constant across settings)."""

    log_a_lr: float = float(np.log(0.008))
    log_a_bs: float = float(np.log(0.006))
    tilt: float = 0.3
    bend: float = -0.1
    skew_lr: float = 0.8
    skew_bs: float = 0.2
    lr_batch: float = 0.1
    asym_lr: float = 0.0
    sigma0: float = 0.0008
    sigma1: float = 0.05
    nu: float = 7.0
    spike_w: float = 0.05
    spike_mean: float = 3.0
    spike_sd: float = 3.0
    tau0: float = 2.2  # divergence edge, ln lr above the optimum
    width: float = 0.1
    lr_window: float = 1.6  # ln-units either side of the optimum covered by the grid
    bs_window: float = 1.6

    def excess(self, x, y) -> np.ndarray:
        """Relative excess loss q of runs at ln offsets (x, y) from the optimum."""
        from ..bayes.surface import SHAPES, excess

        return excess(x, y, {k: getattr(self, k) for k in SHAPES})


DEFAULT_SETTINGS = pd.DataFrame(
    [("dense", "dense", n, d) for n in (2e8, 5e8, 1.2e9) for d in (5e9, 2e10, 8e10)]
    + [("moe", "moe", 2e9, d) for d in (4e9, 2e10)],
    columns=["family", "variant", "N", "D"],
)


def loss_floor(N, D) -> np.ndarray:
    """A Chinchilla-shaped best loss L*(N, D)."""
    return 1.7 + 406.4 / np.power(N, 0.34) + 410.7 / np.power(D, 0.28)


def _design(design: str, surface: TrueSurface, rng: np.random.Generator, runs: int):
    """ln offsets (x, y) of a setting's runs from its optimum."""
    lr_step, bs_step = math.log(2) / 2, math.log(2)
    if design == "grid":
        kx = np.arange(-math.floor(surface.lr_window / lr_step), 20)
        ky = np.arange(-math.floor(surface.bs_window / bs_step),
                       math.floor(surface.bs_window / bs_step) + 1)  # fmt: skip
        px, py = rng.uniform(-0.5, 0.5, 2)
        x, y = ((a.ravel()) for a in np.meshgrid((kx + px) * lr_step, (ky + py) * bs_step,
                                                  indexing="ij"))  # fmt: skip
        keep = x <= surface.tau0 + 3 * lr_step  # a sweep stops a few steps past divergence
        return x[keep], y[keep]
    if design == "one-at-a-time":
        base_x, base_y = rng.normal(0, 0.15), rng.normal(0, 0.3)  # a tuned, not exact, baseline
        kx = np.arange(-3, 4) * lr_step
        ky = np.arange(-2, 3) * bs_step
        x = np.concatenate([base_x + kx, np.full(len(ky) - 1, base_x)])
        y = np.concatenate([np.full(len(kx), base_y), base_y + ky[ky != 0]])
        return x, y
    if design == "random":
        return (rng.uniform(-surface.lr_window, surface.lr_window * 1.5, runs),
                rng.uniform(-surface.bs_window, surface.bs_window, runs))  # fmt: skip
    raise ValueError(f"design must be one of {list(DESIGNS)}; got {design!r}")


def simulate_sweeps(
    settings: pd.DataFrame | None = None,
    law: TrueLaw | None = None,
    surface: TrueSurface | None = None,
    seed: int = 0,
    seq_len: int = 2048,
    *,
    design: str = "grid",
    runs: int = 24,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate a sweep table from a known law and loss surface.

    Parameters
    ----------
    settings : DataFrame, optional
        One row per setting with ``family``, ``variant``, ``N``, ``D`` (and optionally
        ``recipe``); default: 9 dense settings and 2 MoE settings.
    law, surface : optional
        The true law of the optima and the true loss surface around them.
    seed : int
        Seed of the setting effects, the designs and the run noise.
    seq_len : int
        Sequence length of every run.
    design : {"grid", "one-at-a-time", "random"}
        Which runs each setting has (module docstring).
    runs : int
        Runs per setting of the ``"random"`` design.

    Returns
    -------
    sweeps : DataFrame
        In the package schema (validated by :func:`read_sweeps`); a diverged run reports a
        loss of 7 x its best loss.
    truth : DataFrame
        One row per setting: ``setting``, the true optimum ``lr_opt``, ``batch_tokens_opt``
        (setting effects included), the law optimum without them, and ``loss_star``.
    """
    from ..bayes.surface import sigmoid

    settings = DEFAULT_SETTINGS if settings is None else settings
    law = law or TrueLaw()
    surface = surface or TrueSurface()
    rng = np.random.default_rng(seed)
    n_set = len(settings)
    groups = [f"{f}/{v}" if v != f else f for f, v in zip(settings["family"], settings["variant"])]
    law_lr, law_bs = zip(
        *(law.optimum(n, d, g) for n, d, g in zip(settings["N"], settings["D"], groups))
    )
    log_lr_opt = np.log(law_lr) + law.sigma_setting_lr * rng.standard_normal(n_set)
    log_bs_opt = np.log(law_bs) + law.sigma_setting_bs * rng.standard_normal(n_set)
    frames, stars = [], []
    for i, row in enumerate(settings.itertuples(index=False)):
        x, y = _design(design, surface, rng, runs)
        q = surface.excess(x, y)
        best = float(loss_floor(row.N, row.D))
        stars.append(best)
        spiked = rng.random(q.shape) < surface.spike_w * (1 - np.exp(-q / 0.01))
        noise = np.where(spiked, surface.spike_mean + surface.spike_sd * rng.standard_normal(
            q.shape), rng.standard_t(surface.nu, q.shape))  # fmt: skip
        loss = best * (1 + q) + best * (surface.sigma0 + surface.sigma1 * q) * noise
        diverged = rng.random(q.shape) < sigmoid((x - surface.tau0) / surface.width)
        loss = np.where(diverged | ~np.isfinite(loss), 7.0 * best, loss)
        frame = pd.DataFrame(
            {
                "N": float(row.N),
                "D": float(row.D),
                "lr": np.exp(x + log_lr_opt[i]),
                "batch_sequences": np.maximum(1.0, np.round(np.exp(y + log_bs_opt[i]) / seq_len)),
                "seq_len": seq_len,
                "loss": loss,
                "family": row.family,
                "variant": row.variant,
            }
        )
        if "recipe" in settings:
            frame["recipe"] = row.recipe
        frames.append(frame)
    sweeps = read_sweeps(pd.concat(frames, ignore_index=True))
    truth = settings.reset_index(drop=True).assign(
        lr_opt=np.exp(log_lr_opt),
        batch_tokens_opt=np.exp(log_bs_opt),
        lr_law=np.asarray(law_lr),
        batch_tokens_law=np.asarray(law_bs),
        loss_star=stars,
    )
    key = sweeps.drop_duplicates(["family", "variant", "N", "D"])
    truth = truth.merge(key[["family", "variant", "N", "D", "setting"]], how="left")
    return sweeps, truth
