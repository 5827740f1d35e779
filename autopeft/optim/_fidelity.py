"""A fidelity-aware GP of the metric: rung results and full-fidelity results in one model.

Successive halving trains most configurations only for a few steps. Their rung metrics are noisy,
biased (not yet converged) estimates of the full-fidelity metric; this surrogate uses them instead of
throwing them away. The training length enters as one more input, the *fidelity*
``f = log(steps) / log(top_steps)`` in [0, 1] (1 = the top rung; `fidelity_feature`), and the model is

    y(x, f) = m(f) + g(x, f) + e,   g ~ GP(0, k_x(x, x') k_f(f, f')),   e ~ N(0, s2 exp(b (1 - f)))

- ``k_x k_f``: BoTorch's default RBF kernel with the dimension-scaled log-normal lengthscale prior
  (Hvarfner et al., ICML 2024) over the configuration features and the fidelity, i.e. a product
  kernel whose fidelity lengthscale says how well a short run predicts a long one (learnt from data:
  configurations seen at two rungs tie it down). This is the "fidelity as an extra dimension" model of
  multi-fidelity BO (e.g. Kandasamy et al., "Multi-fidelity Bayesian Optimisation with Continuous
  Approximations", ICML 2017; BoTorch's `SingleTaskMultiFidelityGP` uses the same layout with a
  `LinearTruncatedFidelityKernel`).
- ``m(f) = c + a (1 - f)``: short runs score systematically lower (or higher, for a loss); the bias is
  a learnt mean offset that vanishes at the top fidelity (`FidelityMean`).
- the noise variance grows as the run gets shorter, ``s2 exp(b (1 - f))`` with learnt ``s2`` and
  ``b >= 0`` (`FidelityNoise`): evaluation noise of an SGD run shrinks with its length (for variance
  proportional to 1 / steps, ``b = log(top_steps)``), so a few precise full-fidelity results are not
  drowned by many noisy rung results.

The acquisition scores candidates at ``f = 1`` only (`at_fidelity`): hypervolume improvement is about
full-fidelity results. Shapes: ``train_X`` is ``n x (D + 2)``, columns ``[features.., f, pct]``
(the fidelity second to last, so that the pct feature stays the last column the MC objective reads);
``train_Y`` is ``n x 1``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from botorch.models.utils.gpytorch_modules import get_covar_module_with_dim_scaled_prior
from gpytorch.constraints import GreaterThan
from gpytorch.likelihoods import _GaussianLikelihoodBase
from gpytorch.likelihoods.noise_models import Noise
from gpytorch.means import Mean
from gpytorch.priors import LogNormalPrior
from linear_operator.operators import DiagLinearOperator
from torch import Tensor

from autopeft.optim._surrogate import warm_fit

#: the fidelity of a full-fidelity (top-rung) result
TOP = 1.0
_MIN_NOISE = 1e-4
_INITIAL_GROWTH = 3.0


def at_fidelity(X: Tensor, fidelity: float = TOP) -> Tensor:
    """``... x (D + 1)`` features (last column pct) → ``... x (D + 2)`` with the fidelity inserted second to last."""
    column = torch.full((*X.shape[:-1], 1), float(fidelity), dtype=X.dtype)
    return torch.cat([X[..., :-1], column, X[..., -1:]], dim=-1)


def _fidelity_of(X: Tensor) -> Tensor:
    return X[..., -2]


class FidelityMean(Mean):
    """``m(x, f) = c + a (1 - f)``: a constant plus a learnt bias that vanishes at the top fidelity."""

    def __init__(self) -> None:
        super().__init__()
        self.register_parameter("constant", torch.nn.Parameter(torch.zeros(1)))
        self.register_parameter("slope", torch.nn.Parameter(torch.zeros(1)))

    def forward(self, X: Tensor) -> Tensor:
        return self.constant + self.slope * (1.0 - _fidelity_of(X))


class FidelityNoise(Noise):
    """Diagonal noise ``s2 exp(b (1 - f))`` with ``s2 >= 1e-4`` and ``b >= 0`` learnt (module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        prior = LogNormalPrior(loc=-4.0, scale=1.0)  # BoTorch's default noise prior (Hvarfner et al. 2024)
        self.register_parameter("raw_noise", torch.nn.Parameter(torch.zeros(1)))
        self.register_constraint("raw_noise", GreaterThan(_MIN_NOISE, transform=None, initial_value=prior.mode))
        self.register_prior("noise_prior", prior, lambda m: m.noise, lambda m, v: m._set_noise(v))
        self.register_parameter("raw_growth", torch.nn.Parameter(torch.zeros(1)))
        self.register_constraint("raw_growth", GreaterThan(0.0))
        # Start at b = 3 (noise variance x20 at f = 0): from b = 0 the fit tends to stay in a local optimum
        # that explains noisy rung results by short lengthscales instead (measured on synthetic data).
        self.initialize(raw_growth=self.raw_growth_constraint.inverse_transform(torch.tensor(_INITIAL_GROWTH)))

    @property
    def noise(self) -> Tensor:
        return self.raw_noise_constraint.transform(self.raw_noise)

    def _set_noise(self, value: Tensor | float) -> None:
        value = torch.as_tensor(value, dtype=self.raw_noise.dtype)
        self.initialize(raw_noise=self.raw_noise_constraint.inverse_transform(value))

    @property
    def growth(self) -> Tensor:
        return self.raw_growth_constraint.transform(self.raw_growth)

    def forward(self, *params: Any, shape: torch.Size | None = None, **kwargs: Any) -> DiagLinearOperator:
        X = params[0] if torch.is_tensor(params[0]) else params[0][0]
        return DiagLinearOperator(self.noise * torch.exp(self.growth * (1.0 - _fidelity_of(X))))


class FidelityLikelihood(_GaussianLikelihoodBase):
    """Gaussian likelihood with `FidelityNoise` (its noise depends on the inputs' fidelity column)."""

    def __init__(self) -> None:
        super().__init__(noise_covar=FidelityNoise())


def fit_fidelity_gp(train_X: Tensor, train_Y: Tensor, *, warm: dict[str, Tensor] | None = None,
                    maxiter: int = 100) -> tuple[SingleTaskGP, dict[str, Tensor]]:
    """Fit the fidelity-aware GP (``n x (D + 2)`` → ``n x 1``); returns it and its hyperparameters for warm starts.

    ``maxiter=0`` keeps the ``warm`` hyperparameters and only conditions on the data.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SingleTaskGP(
            train_X, train_Y, likelihood=FidelityLikelihood(), mean_module=FidelityMean(),
            covar_module=get_covar_module_with_dim_scaled_prior(ard_num_dims=train_X.shape[-1]),
            outcome_transform=Standardize(m=train_Y.shape[-1]),
        )
    return warm_fit(model, warm, maxiter)
