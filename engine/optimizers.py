"""First-order optimizers over one flat parameter vector.

Each optimizer is a small class with one :meth:`Optimizer.step`. State arrays
are keyed by name (``"velocity"``, ``"m_sum"``, ``"v_sum"``, …) and have the shape of
the flat parameter vector, so checkpoints store them as they are. Updates are
written as in-place NumPy operations with Python-float scalars, which keep
float32 arrays in float32 (a NumPy ``float64`` scalar would promote them).

An optimizer may be handed gradients multiplied by a constant ``grad_scale``
(the trainer does so to fold the L2 gradient into one pass, see
:func:`engine.penalties.l2_gradient_scale`). Its state then holds moments of
the scaled gradients, and each optimizer compensates exactly where the scale
matters: SGD divides its learning rate by it, Adam and RMSprop multiply their
epsilon by it (their updates are otherwise invariant to the gradient's scale).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engine.spec import OptimizerSpec


class Optimizer:
    """Base class: ``step`` updates ``params`` in place from ``grads``.

    Parameters
    ----------
    size : int
        Length of the flat parameter vector.
    n_weights : int
        The first ``n_weights`` entries are weights (decoupled weight decay
        applies to them only); the rest are biases.
    dtype : numpy dtype
    grad_scale : float
        The gradients passed to :meth:`step` are the true gradients times this.
    """

    #: Power of the gradient scale in each state array (moments of g: 1; of g**2: 2).
    scale_powers: tuple[tuple[str, int], ...] = ()

    def __init__(self, size: int, n_weights: int, dtype: np.dtype, grad_scale: float = 1.0) -> None:
        self.n_weights = n_weights
        self.grad_scale = grad_scale
        self.t = 0
        self.state: dict[str, np.ndarray] = {}
        self._scratch = np.zeros(size, dtype=dtype)
        self._denom: np.ndarray | None = None  # adaptive methods: allocated by the first l1_threshold

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        """Apply one update with learning rate ``lr`` (params, grads: shape (size,))."""
        raise NotImplementedError

    def l1_threshold(self, lr: float, l1: float) -> float | np.ndarray:
        """Soft-threshold of the L1 proximal step after the last update, per weight.

        The proximal step uses the same step size the update used, which for
        adaptive methods is per coordinate.
        """
        return lr * l1

    def _weights_denominator(self, second_moment: str, eps: float) -> np.ndarray:
        """``sqrt(state[second_moment]) + eps`` over the weights: the last step's denominator.

        Recomputed by the same operations as in :meth:`step`, so equal to it bit for bit.
        """
        w = self.n_weights
        if self._denom is None:
            self._denom = np.zeros(w, dtype=self._scratch.dtype)
        np.sqrt(self.state[second_moment][:w], out=self._denom)
        self._denom += eps
        return self._denom

    def state_dict(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """JSON-able scalars and the state arrays, for checkpoints."""
        return {"t": self.t, "grad_scale": self.grad_scale}, dict(self.state)

    def load_state_dict(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """Restore what :meth:`state_dict` returned.

        State saved at another gradient scale (checkpoints without one were
        saved at 1) is rescaled to this optimizer's.
        """
        self.t = int(scalars["t"])
        for key, value in arrays.items():
            self.state[key][...] = value
        ratio = self.grad_scale / float(scalars.get("grad_scale", 1.0))
        if ratio != 1.0:
            for key, power in self.scale_powers:
                self.state[key] *= ratio**power


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum, PyTorch's formulation.

    ``v <- momentum * v + g``; ``p <- p - lr * v`` (or ``lr * (g + momentum * v)``
    with Nesterov).
    """

    scale_powers = (("velocity", 1),)

    def __init__(
        self, size: int, n_weights: int, dtype: np.dtype, momentum: float, nesterov: bool, grad_scale: float = 1.0
    ) -> None:
        super().__init__(size, n_weights, dtype, grad_scale)
        self.momentum = momentum
        self.nesterov = nesterov
        if momentum:
            self.state["velocity"] = np.zeros(size, dtype=dtype)

    def l1_threshold(self, lr: float, l1: float) -> float:
        # With momentum the velocity settles at g / (1 - momentum), so the effective
        # step is lr / (1 - momentum); thresholding with the same step makes the
        # fixed point the exact lasso / elastic-net solution.
        return lr * l1 / (1.0 - self.momentum)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        lr /= self.grad_scale
        if not self.momentum:
            np.multiply(grads, lr, out=self._scratch)
            params -= self._scratch
            return
        v = self.state["velocity"]
        v *= self.momentum
        v += grads
        if self.nesterov:
            np.multiply(v, self.momentum, out=self._scratch)
            self._scratch += grads
            self._scratch *= lr
        else:
            np.multiply(v, lr, out=self._scratch)
        params -= self._scratch


class Adam(Optimizer):
    """Adam (Kingma & Ba), and AdamW with decoupled weight decay when ``weight_decay`` > 0.

    The moments are kept as exponentially weighted sums, ``M = m / (1 - b1)``
    and ``V = v / (1 - b2)``, which saves two passes over the parameters per
    step: ``M <- b1 M + g``, ``V <- b2 V + g^2``. With ``r = sqrt((1 - b2) / (1
    - b2^t))`` the textbook update ``lr * m_hat / (sqrt(v_hat) + eps)`` is
    ``lr (1 - b1) / ((1 - b1^t) r) * M / (sqrt(V) + eps / r)``: the same
    update, rounded differently, with the bias corrections in the scalars.
    Gradients scaled by ``k`` scale ``M`` by ``k`` and ``sqrt(V)`` by ``k``, so
    the update is the same with epsilon scaled by ``k``.
    """

    scale_powers = (("m_sum", 1), ("v_sum", 2))

    def __init__(
        self,
        size: int,
        n_weights: int,
        dtype: np.dtype,
        beta1: float,
        beta2: float,
        epsilon: float,
        weight_decay: float = 0.0,
        grad_scale: float = 1.0,
    ) -> None:
        super().__init__(size, n_weights, dtype, grad_scale)
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.weight_decay = weight_decay
        self.state["m_sum"] = np.zeros(size, dtype=dtype)
        self.state["v_sum"] = np.zeros(size, dtype=dtype)
        self._prox_scale = 0.0
        self._eps = 0.0

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        m, v, tmp = self.state["m_sum"], self.state["v_sum"], self._scratch
        if self.weight_decay:
            # Decoupled (AdamW): shrink the weights, not the gradient.
            params[: self.n_weights] *= 1.0 - lr * self.weight_decay
        m *= self.beta1
        m += grads
        np.multiply(grads, grads, out=tmp)
        v *= self.beta2
        v += tmp
        r = math.sqrt((1.0 - self.beta2) / (1.0 - self.beta2**self.t))
        # The update of a coordinate is (lr / r) / denom times the bias-corrected moment m_hat.
        self._prox_scale, self._eps = lr / r, self.epsilon * self.grad_scale / r
        # The denominator lives in tmp: one work array fewer keeps more of the step in cache.
        np.sqrt(v, out=tmp)
        tmp += self._eps
        np.divide(m, tmp, out=tmp)
        tmp *= self._prox_scale * (1.0 - self.beta1) / (1.0 - self.beta1**self.t)
        params -= tmp

    def load_state_dict(self, scalars: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        if "m" in arrays:  # a checkpoint from before the moments were kept as sums
            arrays = {"m_sum": arrays["m"] / (1.0 - self.beta1), "v_sum": arrays["v"] / (1.0 - self.beta2)}
        super().load_state_dict(scalars, arrays)

    def l1_threshold(self, lr: float, l1: float) -> np.ndarray:
        # The denominator is grad_scale times the true one.
        denom = self._weights_denominator("v_sum", self._eps)
        return np.divide(self._prox_scale * l1 * self.grad_scale, denom, out=self._scratch[: self.n_weights])


class RMSprop(Optimizer):
    """RMSprop: ``s <- rho s + (1 - rho) g^2``; ``p <- p - lr * g / (sqrt(s) + eps)``.

    Invariant to the gradient's scale but for epsilon, which is scaled with it.
    """

    scale_powers = (("s", 2),)

    def __init__(
        self, size: int, n_weights: int, dtype: np.dtype, rho: float, epsilon: float, grad_scale: float = 1.0
    ) -> None:
        super().__init__(size, n_weights, dtype, grad_scale)
        self.rho, self.epsilon = rho, epsilon
        self.state["s"] = np.zeros(size, dtype=dtype)

    def step(self, params: np.ndarray, grads: np.ndarray, lr: float) -> None:
        self.t += 1
        s, tmp = self.state["s"], self._scratch
        np.multiply(grads, grads, out=tmp)
        s -= tmp
        s *= self.rho
        s += tmp
        np.sqrt(s, out=tmp)
        tmp += self.epsilon * self.grad_scale
        np.divide(grads, tmp, out=tmp)
        tmp *= lr
        params -= tmp

    def l1_threshold(self, lr: float, l1: float) -> np.ndarray:
        denom = self._weights_denominator("s", self.epsilon * self.grad_scale)
        return np.divide(lr * l1 * self.grad_scale, denom, out=self._scratch[: self.n_weights])


def create(spec: OptimizerSpec, size: int, n_weights: int, dtype: np.dtype, grad_scale: float = 1.0) -> Optimizer:
    """The optimizer ``spec`` names, for a flat parameter vector of ``size`` entries.

    ``grad_scale``: the gradients it will be given are the true ones times this.
    """
    if spec.name == "sgd":
        return SGD(size, n_weights, dtype, spec.momentum, spec.nesterov, grad_scale)
    if spec.name == "adam":
        return Adam(size, n_weights, dtype, spec.beta1, spec.beta2, spec.epsilon, grad_scale=grad_scale)
    if spec.name == "adamw":
        return Adam(size, n_weights, dtype, spec.beta1, spec.beta2, spec.epsilon, spec.weight_decay, grad_scale)
    if spec.name == "rmsprop":
        return RMSprop(size, n_weights, dtype, spec.rho, spec.epsilon, grad_scale)
    raise ValueError(f"unknown optimizer {spec.name!r}")
