"""Published optimal-hyperparameter laws, each written once, with its source and units.

The Step Law paper (Li et al. 2025, "Predictable Scale: Part I", arXiv:2503.04715) compares
its own law (its Table 2) with six earlier laws (its Table 1). This module writes each of them
once, as a :class:`PublishedLaw`: source, formula, units, the inputs it needs, the readings
chosen where Table 1 is ambiguous or garbled, and a vectorised evaluation.

Conventions, for every law:

* ``N`` is the number of non-embedding parameters and ``D`` the number of training tokens (the
  Step Law's notation, its section 1.1). ``loss`` is a cross-entropy loss in nats; the
  evaluation of the released sweeps passes each setting's best observed smoothed training loss.
* :meth:`PublishedLaw.lr` gives the peak learning rate and :meth:`PublishedLaw.batch_tokens`
  the batch size **in tokens**, whatever unit the law itself uses (:attr:`PublishedLaw.batch_unit`
  says which; sequences are multiplied by ``seq_len``). A law that gives no learning rate (or
  no batch size) returns ``None``.
* ``log`` is the natural logarithm throughout (see the OpenAI law's note).
* Compute is ``C = M * D`` FLOPs with ``M`` the non-embedding training FLOPs per token, as in
  DeepSeek LLM; ``M`` defaults to ``6 N`` (so ``C = 6 N D``) unless ``flops_per_token`` is
  given (:func:`steplaw_flops_per_token` computes the Step Law repository's ``M``).

The laws, with the constants as implemented ([...] is what the Step Law's Table 1 prints
where it differs; ``C = M D`` is compute in FLOPs, ``L`` the loss):

=========  ===================  =========================  =======================  =======  ====
key        source (arXiv)       peak learning rate         batch size (tokens)      needs    eval
=========  ===================  =========================  =======================  =======  ====
steplaw    Li 2503.04715        1.79 N^-0.713 D^0.307      0.58 D^0.571             N, D     yes
openai     Kaplan 2001.08361    0.003239 - 0.0001395 ln N  2e8 L^-4.7619 [2e18]     N, loss  yes
microsoft  Bjorck 2409.19913    1.3192e-5 N^-0.23 D^-0.32  (none)                   N, D     no
deepseek   DeepSeek 2401.02954  0.3118 C^-0.125 [0.3188]   0.2920 C^0.3271          N, D     yes
porian     Porian 2406.19146    3.7 N^-0.36                0.7576 N^0.703           N        yes
minicpm    Hu 2404.06395        (none)                     1.21e9 L^-6.24 [2e18]    loss     yes
meituan    Wang 2410.05661      lambda L^-alpha            lambda_B L^(-1/alpha_B)  loss     no
=========  ===================  =========================  =======================  =======  ====

Two laws are not evaluable (:attr:`PublishedLaw.evaluable` is False, and evaluating them raises
:class:`LawNotEvaluableError`): MeiTuan's because no fitted constants were published in Table 1
or found in the original paper's retrievable text, Microsoft's because the constant Table 1
prints gives learning rates some six orders of magnitude below the swept grid, which
contradicts Table 1's own 9.25 per-mille error for that law, and Bjorck et al.'s own constant
could not be retrieved. Each law's :attr:`~PublishedLaw.note` records the readings chosen and
where they were found.

This module imports only NumPy at import time (pandas inside :meth:`PublishedLaw.predict` and
:func:`laws_table`), never PyMC, ArviZ or xarray, and nothing else from this package, so that
any module may import it.
"""

from .._validate import DEFAULT_SEQ_LEN
from .law import (
    INPUTS,
    PAPER_TABLE2,
    LawNotEvaluableError,
    PublishedLaw,
    steplaw_flops_per_token,
)
from .published import LAWS, STEP_LAW, evaluable_laws, get_law, laws_table

__all__ = [
    "DEFAULT_SEQ_LEN",
    "INPUTS",
    "LAWS",
    "PAPER_TABLE2",
    "STEP_LAW",
    "LawNotEvaluableError",
    "PublishedLaw",
    "evaluable_laws",
    "get_law",
    "laws_table",
    "steplaw_flops_per_token",
]
