"""The posterior of the loss model: every answer about a new run, from one set of draws.

:class:`LossPosterior` holds the draws of the loss model (:mod:`.loss_model`) and answers with
numpy alone (PyMC is imported only to fit): the optimum and the best run a sweep finds
(:meth:`LossPosterior.predict`), the loss a run reports and its probability of diverging
(:meth:`~LossPosterior.predict_loss`), the best loss L* (:meth:`~LossPosterior.best_loss`),
the Bayes decision with lr, batch, both or neither fixed (:meth:`~LossPosterior.recommend`),
the plateau probability for either event (:meth:`~LossPosterior.plateau_probability`) and what
a fixed batch costs (:meth:`~LossPosterior.batch_cost`). Each is a reduction of the same
surfaces, one per draw (:mod:`.answers`), and each returns the one result grammar of
:mod:`.predictive`; so the answers agree with one another (``tests/test_coherence.py``).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from .._format import format_param, markdown_table
from .._validate import DEFAULT_TOL, check_choice, check_seq_len, check_tol, scalar
from .answers import (
    PLATEAU_ABOUT,
    REFERENCES,
    SWEEP_GRID,
    Recommendation,
    Surface,
    check_sweep_grid,
    decide,
    expected_loss,
    sweep_best,
)
from .design import Design, build_design
from .labs import setting_labs
from .law import KINDS as LAW_KINDS
from .law import StepLawPosterior, extrapolation
from .predictive import Draws, map_blocks, points
from .surface import (
    LOSS_PRIORS,
    best_loss,
    evaluate,
    fitted_box,
    mark_diverged,
    run_log_likelihood,
    run_logpdf,
    sigmoid,
)

NOISE_PARAMETERS = ("nu", "nu_far", "spike_w", "spike_mean", "spike_sd")
_CARD_PARAMETERS = ("star_E", "star_a", "star_b", "star_c", "sigma_setting_star", "sigma_run",
                    "sigma_run_q", *NOISE_PARAMETERS, "div_tau0", "div_width")  # fmt: skip


class LossPosterior(StepLawPosterior):
    """Posterior of the loss model: the loss a run will report, its best loss, divergence.

    Predictive methods (numpy only): :meth:`predict_loss`, :meth:`best_loss`,
    :meth:`sweep_best`; checks: :meth:`log_likelihood`, :meth:`loo`. It is a Step-Law
    posterior too (``predict`` gives the optimum's location, from the same law).
    """

    kind = "loss"
    version = 2
    metadata_fields: ClassVar[dict] = {"surface": str, "best_law": str,
                                       "diverged_ratio": (int, float)}  # fmt: skip
    save_drop = ("u", "v")  # m_lr/m_bs minus the law: restated by variables the file keeps

    # ------------------------------------------------------------------ coefficients

    def _family_offset(self, group: str, rng: np.random.Generator) -> np.ndarray:
        """Draws (samples, shapes) of the surface-shape offsets of the group's family (a new
        family: from their prior)."""
        names = self.variables["shape"].values
        column = self.metadata.get("shape_column")
        zero = np.zeros((self.n_samples, len(names)))
        if column is None:
            return zero
        k = self.hierarchy.resolve(group)[0]
        if k >= 0:
            return self.flat(f"shape_{column}")[:, :, k]
        if k == -2:
            return LOSS_PRIORS["shape_group"][1] * rng.standard_normal(zero.shape)
        return zero

    def _shape_terms(self, offset: np.ndarray) -> dict:
        """``shape_<name>``: (terms, samples) per shape, the family's offset in the intercept."""
        coef = self.flat("shape_coef").copy()  # (samples, shapes, terms)
        coef[:, :, 0] += offset
        return {f"shape_{n}": coef[:, i, :].T for i, n in enumerate(self.variables["shape"].values)}

    def _shared(self) -> dict:
        """Per-draw coefficients that do not depend on the group or the setting."""
        noise = {k: self.flat(k) for k in NOISE_PARAMETERS if k in self.variables}
        return noise | {
            "tau0": self.flat("div_tau0").T,
            "tau1": self.flat("div_tau1"),
            "tau2": self.flat("div_tau2"),
            "width": self.flat("div_width"),
            "sigma0": self.flat("sigma_run"),
            "sigma1": self.flat("sigma_run_q"),
        }

    def _star_law(self, group: str, rng: np.random.Generator) -> dict:
        """Per-draw parameters of the group's best-loss law (:func:`.surface.best_loss`)."""
        keys = ("log_K", "a", "b") if "star_log_K" in self.variables else (
            "log_A", "a", "log_B", "b", "c")  # fmt: skip
        star = {k: self.flat(f"star_{k}") for k in keys}
        # a group's offset r moves its floor by r·L0: to first order its offset of ln L* at
        # the data's centre, which extrapolates with the floor (loss_model.star_law)
        E = self.flat("star_E") + self._offset("star", group, rng) * self.flat("star_L0")
        if "dev_star_N_lab" not in self.variables:
            return star | {"E": E}
        # the lab's tilt of ln L*, about its own settings' centre (a new lab's: the data's)
        tilt = self.lab_deviations(group, rng, ("star_N", "star_D"))
        u0, v0 = self.lab_centre(group)
        centre = {"u0": np.full(self.n_samples, u0), "v0": np.full(self.n_samples, v0)}
        return star | {"E": E, "tilt_N": tilt[0], "tilt_D": tilt[1], **centre}

    def coefficients(self, group: str, rng: np.random.Generator, law: bool = False) -> dict:
        """Per-draw coefficients of a new setting of ``group`` (:func:`.surface.evaluate`):
        the law's optimum with a new setting's scatter, the group's best-loss law with a new
        setting's scatter of L*, the family's surface shape (``law=True``: no setting
        scatter). One generator draws every random part, in one order."""
        coef_lr, coef_bs = self.law_coefficients(group, "law" if law else "optimum", rng)
        shapes = self._shape_terms(self._family_offset(group, rng))
        star = self._star_law(group, rng)
        scatter = self.flat("sigma_setting_star") * rng.standard_normal(self.n_samples)
        shared = self._shared()
        if "dev_div_lab" in self.variables:  # the lab's level of the divergence edge
            shared["tau0"] = shared["tau0"].copy()
            shared["tau0"][0] += self.lab_deviations(group, rng, ("div",))[0]
        return {
            "m_lr": coef_lr,
            "m_bs": coef_bs,
            **shapes,
            "star": star,
            "star_scale": np.ones(self.n_samples) if law else np.exp(scatter),
            "surface_box": fitted_box(self.metadata),
            **shared,
        }

    def surface(self, group: str = "dense", *, seed: int = 0, law: bool = False) -> Surface:
        """The loss surfaces of new settings of ``group``, one per posterior draw: what every
        answer reduces (:class:`.answers.Surface`)."""
        self.hierarchy.resolve(group)  # a KeyError naming the known groups
        rng = np.random.default_rng([seed, 1])
        meta = self.metadata
        coef = self.coefficients(group, rng, law)
        return Surface(coef, meta["log_n0"], meta["log_d0"], seed, group)

    # ------------------------------------------------------------------ the answers

    def predict(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *,
        group: str = "dense",
        kind: str | None = None,
        seq_len: int | None = None,
        sweep_grid: tuple = SWEEP_GRID,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Draws:
        """The optimal lr and batch size at (N, D): draws of the argmin of each surface.

        Parameters
        ----------
        N, D : float, str or array-like
            Non-embedding parameters and training tokens; broadcast together.
        group : str
            ``"dense"``, ``"moe/1in8"``, ... (:attr:`groups_seen`) or ``"new"``.
        kind : {"sweep", "optimum", "law"}, optional
            ``"optimum"`` (default): the optimum of a new setting, the argmin of its expected
            loss; ``"sweep"``: the best run a grid sweep of a new setting will find,
            simulated per draw (``sweep_grid``), its loss too; ``"law"``: the law's optimum.
        seq_len : int, optional
            To express the batch in sequences (default: the fit's).
        sweep_grid : (float, float, int, int)
            The simulated sweep: lr step, batch step, number of lr and of batch values.
        seed : int
            Seed of the new setting's draws and of the simulated sweeps.
        allow_unconverged : bool
            Answer from a posterior that failed its convergence gate.

        Returns
        -------
        Draws
            ``lr``, ``batch_tokens``, ``batch_sequences`` (and, for ``"sweep"``, ``loss``,
            the best run's reported loss).
        """
        kind = check_choice(self.default_kind if kind is None else kind, "kind", LAW_KINDS)
        seq_len = check_seq_len(self.seq_len if seq_len is None else seq_len)
        self.gate(allow_unconverged)
        pts = points({"N": N, "D": D})
        surf = self.surface(group, seed=seed, law=kind == "law")
        attrs = {"group": group, "seq_len": seq_len}
        n, d = pts.values["N"], pts.values["D"]
        if kind == "sweep":
            grid = check_sweep_grid(sweep_grid)

            def generate(block: slice) -> dict:
                best = sweep_best(surf, n[block], d[block], grid, block.start)
                return {"lr": np.exp(best["log_lr"]), "batch_tokens": np.exp(best["log_bs"]),
                        "loss": best["loss"]}  # fmt: skip

            names = ("lr", "batch_tokens", "loss")
        else:

            def generate(block: slice) -> dict:
                m_lr, m_bs = surf.optimum(n[block], d[block])
                return {"lr": np.exp(m_lr), "batch_tokens": np.exp(m_bs)}

            names = ("lr", "batch_tokens")
        return Draws(
            pts, generate, names, kind, self.n_samples, attrs=attrs,
            derived={"batch_sequences": ("batch_tokens", 1.0 / seq_len)},
            extra=extrapolation(self, pts),
        )  # fmt: skip

    def predict_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *,
        group: str = "dense",
        kind: str = "run",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Draws:
        """The final loss of a run at (lr, batch) of a new setting (N, D).

        Parameters
        ----------
        N, D, lr, batch_tokens : float, str or array-like
            Non-embedding parameters, training tokens, peak learning rate and batch size in
            tokens; all four broadcast together.
        group : str
            ``"dense"``, ``"moe/1in8"``, ... (:attr:`groups_seen`) or ``"new"``.
        kind : {"run", "mean"}
            ``"run"``: the smoothed final loss the run will report, run noise included, given
            that it does not diverge; ``"mean"``: its expected value.
        seed : int
            Seed of the new setting's draws and of the run noise.
        allow_unconverged : bool
            Answer from a posterior that failed its convergence gate.

        Returns
        -------
        Draws
            Quantity ``loss``; probability ``p_diverge`` (that the run diverges).
        """
        kind = check_choice(kind, "kind", ("run", "mean"))
        self.gate(allow_unconverged)
        pts = points({"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens})
        surf = self.surface(group, seed=seed)
        n, d = pts.values["N"], pts.values["D"]
        log_lr, log_bs = np.log(pts.values["lr"]), np.log(pts.values["batch_tokens"])

        def generate(block: slice) -> dict:
            rng = None if kind == "mean" else surf.rng(7, block.start)
            loss, p_diverge = surf.run(n[block], d[block], log_lr[block], log_bs[block], rng)
            return {"loss": loss, "p_diverge": p_diverge}

        return Draws(
            pts, generate, ("loss",), kind, self.n_samples, probabilities=("p_diverge",),
            attrs={"group": group}, extra=extrapolation(self, pts),
        )  # fmt: skip

    def best_loss(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *,
        group: str = "dense",
        kind: str = "best",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Draws:
        """The best loss L*(N, D): the bottom of a setting's loss surface.

        ``kind="best"`` (default): of a new setting (its scatter around the law included);
        ``"best-law"``: of the law itself. Quantity ``loss_star``.
        """
        kind = check_choice(kind, "kind", ("best", "best-law"))
        self.gate(allow_unconverged)
        pts = points({"N": N, "D": D})
        surf = self.surface(group, seed=seed, law=kind == "best-law")
        n, d = pts.values["N"], pts.values["D"]

        def generate(block: slice) -> dict:
            u, v = surf.centred(n[block], d[block])
            star = best_loss(u, v, surf.coef["star"]) * surf.coef["star_scale"]
            return {"loss_star": star}

        return Draws(pts, generate, ("loss_star",), kind, self.n_samples,
                     attrs={"group": group}, extra=extrapolation(self, pts))  # fmt: skip

    def expected_loss(
        self,
        N: float,
        D: float,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *,
        group: str = "dense",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> np.ndarray:
        """Posterior expected loss of runs at one setting, a diverged run counted at 1.5·L*:
        what :meth:`recommend` minimises (``lr`` and ``batch_tokens`` broadcast)."""
        self.gate(allow_unconverged)
        N, D = scalar(N, "N"), scalar(D, "D")
        pts = points({"lr": lr, "batch_tokens": batch_tokens})
        surf = self.surface(group, seed=seed)
        out = expected_loss(surf, N, D, np.log(pts.values["lr"]),
                            np.log(pts.values["batch_tokens"]))  # fmt: skip
        return out.reshape(pts.shape)[()]

    def recommend(
        self,
        N: ArrayLike,
        D: ArrayLike,
        *,
        lr: ArrayLike | None = None,
        batch_tokens: ArrayLike | None = None,
        group: str = "dense",
        tol: float = DEFAULT_TOL,
        seq_len: int | None = None,
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> Recommendation:
        """The (lr, batch) of least posterior expected loss: the Bayes decision.

        With ``batch_tokens`` fixed (by the hardware, say), the best lr for it; with ``lr``
        fixed, the best batch for it; with both, the run as given. The asymmetric surface
        moves the decision off the median optimum: where the high-lr side is steeper, the risk
        of overshooting costs more than undershooting, and the decision shades lr down.

        Parameters
        ----------
        N, D : float, str or array-like
            Settings; broadcast together (and with ``lr``, ``batch_tokens``).
        lr, batch_tokens : float or array-like, optional
            Fix the learning rate or the batch size (tokens).
        group : str
            Group name or ``"new"``.
        tol : float
            Tolerance of the reported plateau probability (:meth:`plateau_probability`).
        seq_len : int, optional
            To express the batch in sequences (default: the fit's).
        """
        tol = check_tol(tol)
        seq_len = check_seq_len(self.seq_len if seq_len is None else seq_len)
        self.gate(allow_unconverged)
        named = {"N": N, "D": D}
        named |= {} if lr is None else {"lr": lr}
        named |= {} if batch_tokens is None else {"batch_tokens": batch_tokens}
        pts = points(named)
        surf = self.surface(group, seed=seed)
        rows = []
        for i in range(pts.size):
            n, d = pts.values["N"][i], pts.values["D"][i]
            fixed_lr = None if lr is None else math.log(pts.values["lr"][i])
            fixed_bs = None if batch_tokens is None else math.log(pts.values["batch_tokens"][i])
            free_x, free_y, free_value = decide(surf, n, d, None, None)
            x, y, value = (free_x, free_y, free_value) if fixed_lr is fixed_bs is None else (
                decide(surf, n, d, fixed_lr, fixed_bs))  # fmt: skip
            at = surf.at(np.array([n]), np.array([d]), np.array([[x]]), np.array([[y]]))
            m_lr, m_bs = surf.optimum(np.array([n]), np.array([d]))
            p_div = sigmoid(at["logit"])[0]
            rows.append({
                "lr": math.exp(x), "batch_tokens": math.exp(y),
                "expected_loss": value, "expected_excess": float(np.mean(Surface.excess(at))),
                "cost": value - free_value,
                "plateau_probability": float(np.mean((1 - p_div) * (at["q"][0] <= tol))),
                "p_diverge": float(p_div.mean()),
                "lr_median_optimum": float(np.exp(np.median(m_lr))),
                "batch_tokens_median_optimum": float(np.exp(np.median(m_bs))),
                "best_lr": math.exp(free_x), "best_batch_tokens": math.exp(free_y),
            })  # fmt: skip
        table = pd.DataFrame(rows)
        return Recommendation(
            N=pts.values["N"], D=pts.values["D"], shape=pts.shape, group=group, tol=tol,
            seq_len=seq_len, fixed=tuple(k for k in ("lr", "batch_tokens") if k in named),
            table=table, extra=extrapolation(self, pts),
        )  # fmt: skip

    def plateau_probability(
        self,
        N: ArrayLike,
        D: ArrayLike,
        lr: ArrayLike,
        batch_tokens: ArrayLike,
        *,
        tol: float = DEFAULT_TOL,
        group: str = "dense",
        reference: str = "optimum",
        sweep_grid: tuple = SWEEP_GRID,
        seed: int = 0,
        allow_unconverged: bool = False,
    ):
        """Posterior probability that a new run at (lr, batch) lands on the plateau.

        Two events, named by ``reference``:

        * ``"optimum"`` (default): the run does not diverge and its expected loss is at most
          ``(1 + tol)·L*``, L* the best loss of its setting (the bottom of the surface);
        * ``"sweep"``: the loss the run reports is at most ``(1 + tol)`` times the best loss a
          grid sweep of the same setting reports (``sweep_grid``): the paper's relative loss,
          what a user who sweeps can check. Run noise and divergence are drawn for both.

        Returns an :class:`xarray.DataArray` with the inputs' dimensions (``float()`` of one).
        """
        tol = check_tol(tol)
        check_choice(reference, "reference", REFERENCES)
        grid = check_sweep_grid(sweep_grid)
        self.gate(allow_unconverged)
        pts = points({"N": N, "D": D, "lr": lr, "batch_tokens": batch_tokens})
        surf = self.surface(group, seed=seed)
        v = pts.values

        def block(sl: slice) -> np.ndarray:
            at = surf.at(v["N"][sl], v["D"][sl], np.log(v["lr"][sl])[:, None],
                         np.log(v["batch_tokens"][sl])[:, None])  # fmt: skip
            p_alive = 1 - sigmoid(at["logit"])
            if reference == "optimum":
                return np.mean(p_alive * (at["q"] <= tol), axis=1)
            rng = surf.rng(9, sl.start)
            best = sweep_best(surf, v["N"][sl], v["D"][sl], grid, sl.start)["loss"]
            loss = surf.reported(at, rng)
            alive = rng.random(loss.shape) < p_alive
            return np.mean(alive & (loss <= (1 + tol) * best), axis=1)

        out = np.concatenate([np.empty(0), *map_blocks(pts.size, block)])
        result = pts.unflat(out).rename("plateau_probability")
        result.attrs = {"reference": reference, "tol": tol, "group": group,
                        "about": PLATEAU_ABOUT[reference].format(tol=tol)}  # fmt: skip
        return result

    def batch_cost(
        self,
        N: float,
        D: float,
        batch_tokens: ArrayLike,
        *,
        group: str = "dense",
        seed: int = 0,
        allow_unconverged: bool = False,
    ) -> pd.DataFrame:
        """What fixed batches cost at one setting: for each, the best lr at that batch and the
        increase of the expected loss over the best (lr, batch) (:meth:`recommend`'s
        ``cost``). Columns as :meth:`Recommendation.to_dataframe`'s."""
        N, D = scalar(N, "N"), scalar(D, "D")
        return self.recommend(N, D, batch_tokens=batch_tokens, group=group, seed=seed,
                              allow_unconverged=allow_unconverged).to_dataframe()  # fmt: skip

    def loss_log_density(
        self, N: float, D: float, lr: ArrayLike, batch_tokens: ArrayLike, loss: ArrayLike, *,
        group: str = "dense", seed: int = 0,
    ) -> np.ndarray:  # fmt: skip
        """ln of the predictive density of observed losses of runs (that did not diverge) at
        one new setting: the mixture over posterior draws of their Student-t densities."""
        N, D = scalar(N, "N"), scalar(D, "D")
        pts = points({"lr": lr, "batch_tokens": batch_tokens})
        loss = np.broadcast_to(np.asarray(loss, dtype=float), pts.shape).ravel()
        surf = self.surface(group, seed=seed)

        def block(sl: slice) -> np.ndarray:
            n = sl.stop - sl.start
            at = surf.at(np.full(n, N), np.full(n, D), np.log(pts.values["lr"][sl])[:, None],
                         np.log(pts.values["batch_tokens"][sl])[:, None])  # fmt: skip
            lp = run_logpdf(loss[sl, None], at["loc"], at["scale"], at["q"], surf.noise)
            return np.logaddexp.reduce(lp, axis=1) - np.log(self.n_samples)

        out = np.concatenate([np.empty(0), *map_blocks(pts.size, block)])
        return out.reshape(pts.shape)[()]

    def sweep_best(
        self, N: float, D: float, lr: ArrayLike, batch_tokens: ArrayLike, *,
        group: str = "dense", seed: int = 0,
    ) -> np.ndarray:  # fmt: skip
        """Draws of the lowest loss a sweep of one setting reports over the given runs (lr,
        batch): each draw one new setting and one noisy outcome of every run; a diverged run
        does not count. NaN where every run diverged."""
        N, D = scalar(N, "N"), scalar(D, "D")
        pts = points({"lr": lr, "batch_tokens": batch_tokens})
        surf = self.surface(group, seed=seed)
        n = pts.size
        at = surf.at(np.full(n, N), np.full(n, D), np.log(pts.values["lr"])[:, None],
                     np.log(pts.values["batch_tokens"])[:, None])  # fmt: skip
        rng = surf.rng(11, 0)
        loss = surf.reported(at, rng)
        dead = rng.random(loss.shape) < sigmoid(at["logit"])
        loss = np.where(dead, np.inf, loss).min(axis=0)
        return np.where(np.isfinite(loss), loss, np.nan)

    # ------------------------------------------------------------------ fit checks

    def run_design(self, sweeps: pd.DataFrame) -> Design:
        """The design of the runs this posterior was fitted on (same groups and centre)."""
        runs = mark_diverged(sweeps, self.metadata["diverged_ratio"])
        meta = self.metadata
        design = build_design(runs, meta["groups"], meta["log_n0"], meta["log_d0"])
        if design.settings != [str(s) for s in self.variables["setting"].values]:
            raise ValueError(
                "the sweep table's settings are not those of the fit; pass the table the "
                "posterior was fitted on"
            )
        return design

    def run_predictions(self, sweeps: pd.DataFrame) -> dict:
        """Per-draw location, scale and divergence log-odds of every fitted run, from the
        fitted settings' own optima, L* and shape: arrays (samples, runs), and the design."""
        design = self.run_design(sweeps)
        rs = design.run_setting
        column = self.metadata.get("shape_column")
        coef = {
            "m_lr": (self.flat("m_lr")[:, rs], 0.0, 0.0),
            "m_bs": (self.flat("m_bs")[:, rs], 0.0, 0.0),
            "star": None,
            "star_scale": self.flat("loss_star")[:, rs],
            **{k: (v[:, None] if v.ndim == 1 else v) for k, v in self._shared().items()},
        }
        coef["tau0"] = tuple(c[:, None] for c in self.flat("div_tau0").T)
        if "dev_div_lab" in self.variables:  # each run's lab's level of the divergence edge
            labs, lab_index = setting_labs(design.runs, design)
            known = [list(self.metadata["labs"]).index(lab) for lab in labs]
            coef["tau0"] = (coef["tau0"][0] + self.flat("dev_div_lab")[:, known][:, lab_index[rs]],
                            *coef["tau0"][1:])  # fmt: skip
        offset = np.zeros((self.n_samples, len(rs), len(self.variables["shape"])))
        if column is not None:
            fam = self.flat(f"shape_{column}")  # (samples, shapes, levels)
            pad = np.concatenate([fam, np.zeros_like(fam[:, :, :1])], axis=2)
            offset = pad[:, :, design.setting_levels[rs, 0]].transpose(0, 2, 1)
        shape_coef = self.flat("shape_coef")
        for i, name in enumerate(self.variables["shape"].values):
            terms = [shape_coef[:, i, t][:, None] for t in range(shape_coef.shape[2])]
            terms[0] = terms[0] + offset[:, :, i]
            coef[f"shape_{name}"] = tuple(terms)
        out = evaluate(coef, design.log_n[rs], design.log_d[rs], design.log_lr, design.log_bs)
        return out | {"design": design}

    def log_likelihood(self, sweeps: pd.DataFrame) -> np.ndarray:
        """Pointwise log-likelihood of every fitted run (its divergence and, if it did not
        diverge, its loss), shape (chain, draw, run), for PSIS-LOO."""
        pred = self.run_predictions(sweeps)
        runs = pred["design"].runs
        div = runs["diverged"].to_numpy(bool)
        loss = runs["loss"].to_numpy(float)
        noise = {k: self.flat(k)[:, None] for k in NOISE_PARAMETERS if k in self.variables}
        ll = run_log_likelihood(div, loss, pred, noise)
        sizes = self.variables.sizes
        return ll.reshape(sizes["chain"], sizes["draw"], -1)

    def loo(self, sweeps: pd.DataFrame):
        """PSIS-LOO (ArviZ ``ELPDData``) of the fit on its own sweep table."""
        from .sampling import psis_loo

        return psis_loo(self.posterior, self.log_likelihood(sweeps))

    def card_sections(self) -> list[str]:
        """Model-card sections: equations, priors, the candidate table (``metadata
        ["candidates"]``, from ``bayes-steplaw card loss --candidates FILE``) when there is
        one."""
        m = self.metadata
        priors = "\n".join(
            f"- `{k}` ~ {spec[0]}({', '.join(map(format_param, spec[1:]))})"
            for k, spec in LOSS_PRIORS.items()
        )
        labs = m.get("labs") or ["step-law"]
        lab_line = (
            f"Labs: {', '.join(labs)}; the released lab (step-law) holds the shared exponents "
            "and best-loss law, and each other lab's α, β, γ (learned spread, HalfNormal(0.2)) "
            "and best-loss log-slopes in N and D (sd 0.05) deviate from them about the centre "
            "of its own settings; its levels of lr, batch, best loss and divergence edge are "
            "its own (sd 1), its families' offsets summing to zero about them. A never-seen "
            "group's lab draws its levels and deviations from those spreads, so its interval "
            "widens with the distance in N and D from the data's centre: ±0.2 in α is ×1.6 in "
            "lr per sd at one decade of N."
            if len(labs) > 1
            else "One lab (the Step Law paper's setup): the exponents and the best-loss law are "
            "shared by every group; a pooled fit with another lab's sweeps gives each other lab "
            "levels of its own (sd 1) and deviations of α, β, γ (prior sd 0.2) and of its best "
            "loss's log-slopes in N and D (sd 0.05)."
        )
        if len(labs) == 1 and not m.get("pooled"):
            lab_line += (
                " Other labs are not pooled into this fit: pooled at 4 x 1,200 draws with "
                "k = 1, 2 or 4 of their smallest settings, Marin's NAdamW sweeps "
                "(`load_external`) reached R-hat 1.006 / 1.008 / 1.011 with no divergences (k = 2 "
                "passes the gate); their held-out best lrs sat 1.25 / 1.27 / 1.75x above the "
                "medians, 100 / 88 / 79% inside the 90% intervals, though no NAdamW sweep has lrs "
                "on both sides of its best run; the held-out runs' losses were 98-100% inside "
                "theirs, median error 1.2% at k = 2 (docs: few-shot transfer; "
                "benchmarks/bench_lab_transfer.py). Each released MoE variant held out and "
                "pooled as a user's lab from its smallest setting (k = 1): 90% intervals x3.6 "
                "in lr and x4.7 in batch (a never-seen family: x6.7 and x8.1), 12 and 11 of the "
                "12 held-out best runs inside (benchmarks/bench_transfer.py; 2 x 500 draws, "
                "R-hat up to 1.047)."
            )
        sections = [
            "## Loss model",
            "",
            "The loss of a run at (N, D, lr, batch, group): an optimum that follows the "
            "hierarchical Step Law, a best loss L*(N, D) of Chinchilla type with group floors, "
            "a skewed, tilted valley around the optimum (`bayes_steplaw.bayes.surface`), run "
            "noise whose scale grows with the excess loss and that spikes upward away from the "
            "optimum, and a divergence edge in lr. Every answer of the package is a reduction "
            "of these draws (`bayes_steplaw.bayes.answers`).",
            "",
            f"All {m['n_runs']} runs ({m.get('n_diverged', '?')} diverged: loss above "
            f"{m['diverged_ratio']:g}x their setting's lowest). Surface **{m['surface']}**, "
            f"best-loss law **{m['best_law']}**, noise **{m.get('noise', 'spikes')}**."
            + (
                f" Thinned by {m['thinned']} for size and speed (the diagnostics are those of the "
                "full chains)."
                if m.get("thinned", 1) > 1
                else ""
            ),
            "",
            lab_line,
            "",
            f"Whose setup: {self.setup}.",
            "",
            "Priors:",
            "",
            priors,
            "",
        ]
        names = [n for n in _CARD_PARAMETERS if n in self.variables]
        if names:
            table = self.summary(0.9)
            # a vector parameter's rows are named "name[i]"
            table = table[table.index.str.split("[").str[0].isin(names)]
            sections += ["Loss parameters (90% equal-tailed intervals):", "",
                         markdown_table(table), ""]  # fmt: skip
        if m.get("candidates"):
            table = pd.DataFrame(m["candidates"]).set_index("candidate")
            sections += ["## Candidates tried", "", markdown_table(table), ""]
        return sections
