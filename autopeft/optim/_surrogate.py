"""Gaussian-process surrogates of the task metric (and, for the paper's recipe, of the params share).

- ``gp``: `SingleTaskGP` with BoTorch's default prior for its RBF kernel, whose log-normal
  lengthscale prior is scaled with the square root of the dimension (Hvarfner, Hellsten & Nardi,
  "Vanilla Bayesian Optimization Performs Great in High Dimensions", ICML 2024); it suits the 15-70
  mostly binary or ordinal inputs of PEFT spaces without per-space tuning. Outcomes are standardised.
  Hyperparameters are fitted by L-BFGS-B on the marginal likelihood, warm-started from the previous
  fit so that refits after one new observation take a few iterations.
- ``saas``: the SAAS fully Bayesian GP (Eriksson & Jankowiak, "High-Dimensional Bayesian Optimization
  with Sparse Axis-Aligned Subspaces", UAI 2021), `SaasFullyBayesianSingleTaskGP`, fitted by NUTS
  (which BoTorch runs on NumPyro/JAX). When NumPyro is not installed (it is not a dependency of
  autopeft), the maximum-a-posteriori SAAS GP (`get_fitted_map_saas_model`: the same SAAS prior,
  half-Cauchy on the global shrinkage, point estimates instead of NUTS samples) is used;
  `saas_backend()` says which. (BoTorch's `EnsembleMapSaasSingleTaskGP` was 5-10x slower to fit
  here, 8-16 s per output on 2 cores, for no clear gain at these sizes.)

Shapes: ``train_X`` is ``n x D`` in [0, 1], ``train_Y`` is ``n x m`` (m = 1 metric, or 2 outcomes).
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

#: hyperparameter names kept between fits (not the outcome transform's buffers)
_WARM_PREFIXES = ("covar_module.", "likelihood.", "mean_module.")


def saas_backend() -> str:
    """``nuts`` when NumPyro is importable (true fully Bayesian SAAS), else ``map``."""
    return "nuts" if importlib.util.find_spec("numpyro") is not None else "map"


def fit_gp(train_X: Tensor, train_Y: Tensor, *, warm: dict[str, Tensor] | None = None,
           maxiter: int = 100) -> tuple[SingleTaskGP, dict[str, Tensor]]:
    """Fit a `SingleTaskGP` (``n x D`` → ``n x 1``); returns the model and its hyperparameters for warm starts.

    ``maxiter=0`` keeps the ``warm`` hyperparameters as they are and only conditions on the data.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=train_Y.shape[-1]))
    return warm_fit(model, warm, maxiter)


def warm_fit(model, warm: dict[str, Tensor] | None, maxiter: int):
    """Start `model` from the `warm` hyperparameters (those of matching shape), fit them for at most `maxiter`
    iterations (0: keep them), and return the model in eval mode with its hyperparameters for the next warm start."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if warm:
            with torch.no_grad():
                for name, param in model.named_parameters():
                    if name in warm and warm[name].shape == param.shape:
                        param.copy_(warm[name])
        if maxiter > 0:
            mll = ExactMarginalLogLikelihood(model.likelihood, model)
            fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": maxiter}})
    state = {k: v.detach().clone() for k, v in model.named_parameters() if k.startswith(_WARM_PREFIXES)}
    return model.eval(), state


def fit_saas(train_X: Tensor, train_Y: Tensor, *, seed: int, nuts: dict[str, Any] | None = None) -> Model:
    """Fit a SAAS GP (``n x D`` → ``n x m``): fully Bayesian by NUTS, or the MAP fallback.

    ``nuts`` overrides `fit_fully_bayesian_model_nuts` settings (default: warmup 256, 128 samples,
    thinning 16 → 8 posterior samples; BoTorch's defaults are 512/256/16, 4x slower).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if saas_backend() == "nuts":
            from botorch.fit import fit_fully_bayesian_model_nuts
            from botorch.models.fully_bayesian import SaasFullyBayesianSingleTaskGP

            model = SaasFullyBayesianSingleTaskGP(train_X, train_Y, outcome_transform=Standardize(m=train_Y.shape[-1]))
            settings = {"warmup_steps": 256, "num_samples": 128, "thinning": 16, **(nuts or {})}
            fit_fully_bayesian_model_nuts(model, disable_progbar=True, seed=seed, **settings)
            return model.eval()
        return _fit_map_saas(train_X, train_Y)


def _fit_map_saas(train_X: Tensor, train_Y: Tensor) -> Model:
    from botorch.fit import get_fitted_map_saas_model
    from botorch.models.model_list_gp_regression import ModelListGP

    models = [get_fitted_map_saas_model(train_X, train_Y[:, j : j + 1], outcome_transform=Standardize(m=1)).eval()
              for j in range(train_Y.shape[-1])]
    return models[0] if len(models) == 1 else ModelListGP(*models).eval()
