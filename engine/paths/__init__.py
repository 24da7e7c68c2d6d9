"""Regularization paths and their cross-validation, as glmnet computes them (NumPy only).

::

    from engine.paths import fit_path, cv_path

    path = fit_path(X, y, family="gaussian", alpha=1.0)        # 100 λ from λ_max down
    cv = cv_path(X, y, folds, family="binomial", alpha=0.5)    # folds: one id per row
    cv.lambda_1se, cv.path.coef[cv.index_1se]

The penalty is ``λ·(alpha‖w‖₁ + (1-alpha)/2·‖w‖₂²)`` on the standardized weights
(glmnet's and scikit-learn's ``ElasticNet`` with ``alpha=λ``,
``l1_ratio=alpha``); the losses are ``RSS/(2n)`` and the mean log-loss.
Modules: :mod:`~engine.paths.lambdas` (λ_max, the sequence),
:mod:`~engine.paths.coordinate_descent` (the batched Gram solver and its
KKT stopping rule), :mod:`~engine.paths.gaussian` (covariance form, folds
batched), :mod:`~engine.paths.binomial` (IRLS / proximal Newton),
:mod:`~engine.paths.measures` (cvm, cvsd, the 1-SE rule).
"""

from engine.paths.cv import CVPath, cv_path
from engine.paths.measures import MEASURES
from engine.paths.path import FAMILIES, Path, fit_path

__all__ = ["FAMILIES", "MEASURES", "CVPath", "Path", "cv_path", "fit_path"]
