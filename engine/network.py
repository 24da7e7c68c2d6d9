"""A fully connected network with one flat parameter buffer.

Layer ``i`` has ``weight`` of shape (out_features, in_features) and ``bias``
of shape (out_features,), the PyTorch ``nn.Linear`` convention, so export
needs no transposes. All weights live first in one flat array, then all
biases: the optimizer updates every parameter with a handful of NumPy calls
per step, the penalties touch ``params[:n_weights]`` only, and gradients share
the same layout. Linear and logistic models are networks with no hidden layer.

Training buffers are allocated once per batch size and reused by every
batch; the hot loop does no allocation of its own beyond NumPy temporaries of
reductions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine import activations, losses
from engine.dropout import fill_mask

#: Rows per chunk when evaluating large arrays, to bound memory.
EVAL_CHUNK = 4096


@dataclass
class _Buffers:
    """Per-batch-size work arrays; views ``[:m]`` serve a shorter last batch."""

    z: list[np.ndarray]  # layer outputs, (batch, sizes[i + 1])
    grad_in: list[np.ndarray]  # gradient w.r.t. hidden activations, (batch, sizes[i + 1])
    factor: list[np.ndarray]  # relu: derivative times mask; else the dropout mask
    dropped: list[np.ndarray]  # tanh/sigmoid with dropout: activation times mask
    masks: list[np.ndarray]  # dropout masks of the hidden layers
    ones: np.ndarray  # (batch,): bias gradients as ones @ dz, a third of the cost of a column sum
    x_mask: np.ndarray
    x_dropped: np.ndarray


@dataclass
class Network:
    """Fully connected network ``sizes[0] -> ... -> sizes[-1]``.

    Parameters
    ----------
    sizes : list of int
        Units per layer, input first: ``[n_features, *hidden_layers, n_outputs]``.
    activation : {"relu", "tanh", "sigmoid"}
        Activation of every hidden layer.
    head : {"identity", "sigmoid", "softmax"}
        Output head, which fixes the data loss.
    dtype : numpy dtype
        float32 or float64; everything (parameters, buffers) uses it.
    """

    sizes: list[int]
    activation: str
    head: str
    dtype: np.dtype
    params: np.ndarray = field(init=False, repr=False)
    grads: np.ndarray = field(init=False, repr=False)
    weights: list[np.ndarray] = field(init=False, repr=False)
    biases: list[np.ndarray] = field(init=False, repr=False)
    grad_weights: list[np.ndarray] = field(init=False, repr=False)
    grad_biases: list[np.ndarray] = field(init=False, repr=False)
    n_weights: int = field(init=False)
    _buffers: dict[int, _Buffers] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.dtype = np.dtype(self.dtype)
        shapes = list(zip(self.sizes[1:], self.sizes[:-1], strict=True))
        self.n_weights = sum(o * i for o, i in shapes)
        total = self.n_weights + sum(o for o, _ in shapes)
        self.params = np.zeros(total, dtype=self.dtype)
        self.grads = np.zeros(total, dtype=self.dtype)
        self.weights, self.biases = _views(self.params, shapes, self.n_weights)
        self.grad_weights, self.grad_biases = _views(self.grads, shapes, self.n_weights)

    @property
    def n_layers(self) -> int:
        """Number of affine layers (hidden layers + output)."""
        return len(self.sizes) - 1

    def initialize(self, rng: np.random.Generator) -> None:
        """Random initial weights, zero biases.

        Hidden relu layers use He-uniform, tanh/sigmoid layers and the output
        layer Glorot-uniform. A network without hidden layers (linear and
        logistic models, whose objectives are convex) starts from zero.
        """
        self.params[:] = 0.0
        if self.n_layers == 1:
            return
        for i, w in enumerate(self.weights):
            fan_out, fan_in = w.shape
            hidden = i < self.n_layers - 1
            if hidden and self.activation == "relu":
                bound = math.sqrt(6.0 / fan_in)
            else:
                bound = math.sqrt(6.0 / (fan_in + fan_out))
            w[:] = rng.uniform(-bound, bound, size=w.shape)

    # -- inference ---------------------------------------------------------

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Outputs of the network in evaluation mode (no dropout).

        Parameters
        ----------
        X : ndarray of shape (n_samples, sizes[0])

        Returns
        -------
        ndarray of shape (n_samples, sizes[-1])
            Raw outputs: values for regression, logits for classification.
        """
        n = X.shape[0]
        out = np.empty((n, self.sizes[-1]), dtype=self.dtype)
        for start in range(0, n, EVAL_CHUNK):
            a = X[start : start + EVAL_CHUNK]
            for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
                z = a @ w.T
                z += b
                if i < self.n_layers - 1:
                    activations.apply(self.activation, z)
                a = z
            out[start : start + len(a)] = a
        return out

    # -- training ----------------------------------------------------------

    def train_batch(
        self,
        x: np.ndarray,
        y: np.ndarray,
        rng: np.random.Generator,
        input_dropout: float,
        dropout: list[float],
        grad_scale: float = 1.0,
    ) -> None:
        """Forward and backward pass of one mini-batch; leaves the data-loss gradient in ``grads``.

        Parameters
        ----------
        x : ndarray of shape (m, sizes[0])
        y : ndarray of shape (m,)
        rng : numpy.random.Generator
            Source of the dropout masks.
        input_dropout : float
            Drop rate of the input features.
        dropout : list of float
            Drop rate of each hidden layer.
        grad_scale : float
            The gradient left in ``grads`` is the true one times this.
        """
        m = x.shape[0]
        buf = self._batch_buffers(m)
        masks: list[np.ndarray | None] = [None] * self.n_layers
        if input_dropout > 0.0:
            masks[0] = fill_mask(rng, input_dropout, buf.x_mask[:m])
        for i, p in enumerate(dropout):
            if p > 0.0:
                masks[i + 1] = fill_mask(rng, p, buf.masks[i][:m])
        self._forward_backward(x, y, masks, buf, grad_scale=grad_scale)

    def loss_and_gradient(self, x: np.ndarray, y: np.ndarray, masks: list[np.ndarray | None]) -> float:
        """Data loss and its gradient (into ``grads``) with given dropout masks.

        The masks are held fixed, so the loss is a smooth function of the
        parameters that finite differences can check.

        Parameters
        ----------
        x : ndarray of shape (m, sizes[0])
        y : ndarray of shape (m,)
        masks : list of (ndarray or None)
            ``masks[0]`` multiplies the input, shape (m, sizes[0]);
            ``masks[i]`` the i-th hidden activation, shape (m, sizes[i]).
            Entries are 0 or ``1/(1-p)``.
        """
        buf = self._batch_buffers(x.shape[0])
        own = [None if mk is None else mk.astype(self.dtype, copy=True) for mk in masks]
        z = self._forward_backward(x, y, own, buf, want_loss=True)
        return z

    def _forward_backward(
        self,
        x: np.ndarray,
        y: np.ndarray,
        masks: list[np.ndarray | None],
        buf: _Buffers,
        want_loss: bool = False,
        grad_scale: float = 1.0,
    ) -> float:
        m = x.shape[0]
        relu = self.activation == "relu"
        last = self.n_layers - 1
        a = x
        if masks[0] is not None:
            a = np.multiply(x, masks[0], out=buf.x_dropped[:m])
        inputs = [a]
        for i in range(self.n_layers):
            z = buf.z[i][:m]
            np.matmul(a, self.weights[i].T, out=z)
            z += self.biases[i]
            if i < last:
                mask = masks[i + 1]
                if relu:
                    # One factor serves forward and backward: relu'(z) * mask.
                    factor = buf.factor[i][:m]
                    np.greater(z, 0.0, out=factor)
                    if mask is not None:
                        factor *= mask
                    z *= factor
                    a = z
                else:
                    activations.apply(self.activation, z)
                    a = z
                    if mask is not None:
                        a = np.multiply(z, mask, out=buf.dropped[i][:m])
                inputs.append(a)
        out = buf.z[last][:m]
        loss = losses.loss(self.head, out, y) if want_loss else 0.0
        dz = losses.gradient(self.head, out, y, out=out, scale=grad_scale)
        for i in range(last, -1, -1):
            np.matmul(dz.T, inputs[i], out=self.grad_weights[i])
            np.matmul(buf.ones[:m], dz, out=self.grad_biases[i])
            if i == 0:
                break
            da = buf.grad_in[i - 1][:m]
            np.matmul(dz, self.weights[i], out=da)
            if relu:
                da *= buf.factor[i - 1][:m]
            else:
                mask = masks[i]
                if mask is not None:
                    da *= mask
                activations.multiply_derivative(self.activation, buf.z[i - 1][:m], da, buf.factor[i - 1][:m])
            dz = da
        return loss

    def _batch_buffers(self, m: int) -> _Buffers:
        buf = self._buffers.get(m)
        if buf is None:
            # Reuse a larger set when there is one (the short last batch).
            larger = [size for size in self._buffers if size >= m]
            if larger:
                return self._buffers[min(larger)]
            hidden = self.sizes[1:-1]

            def alloc(units: int) -> np.ndarray:
                return np.zeros((m, units), dtype=self.dtype)

            buf = _Buffers(
                z=[alloc(u) for u in self.sizes[1:]],
                grad_in=[alloc(u) for u in hidden],
                factor=[alloc(u) for u in hidden],
                dropped=[alloc(u) for u in hidden],
                masks=[alloc(u) for u in hidden],
                ones=np.ones(m, dtype=self.dtype),
                x_mask=alloc(self.sizes[0]),
                x_dropped=alloc(self.sizes[0]),
            )
            self._buffers[m] = buf
        return buf


def _views(
    flat: np.ndarray, shapes: list[tuple[int, int]], n_weights: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights, biases = [], []
    w_off, b_off = 0, n_weights
    for out_f, in_f in shapes:
        weights.append(flat[w_off : w_off + out_f * in_f].reshape(out_f, in_f))
        biases.append(flat[b_off : b_off + out_f])
        w_off += out_f * in_f
        b_off += out_f
    return weights, biases
