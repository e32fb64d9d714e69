"""export/matmul.py: Einsum nodes lowered to MatMul give numpy.einsum's values
in onnxruntime, for the decode step's equations and others; what the pass
cannot lower stays an Einsum."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from yoshimidi_jax.export.matmul import einsums_to_matmuls

CASES = [  # (equation, shape of x, shape of y)
    ("abc,cd->abd", (1, 4, 13), (13, 128)),  # the embeddings' products
    ("bld,dhk->blhk", (1, 4, 16), (16, 4, 8)),  # the projections
    ("blhk,hkd->bld", (1, 4, 4, 8), (4, 8, 16)),
    ("blhk,bhtk->bhlt", (1, 4, 4, 8), (1, 4, 32, 8)),  # attention over the cache
    ("bhlt,bhtk->blhk", (1, 4, 4, 32), (1, 4, 32, 8)),
    ("blhk,bjhk->bhlj", (2, 3, 4, 8), (2, 3, 4, 8)),  # attention beside it
    ("ij,jk->ki", (3, 5), (5, 2)),  # an output in another order
    ("i,j->ij", (3,), (4,)),  # nothing summed
]


def _model(equation, x_shape, y_shape, y_constant=None):
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)]
    inits = []
    if y_constant is None:
        inputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape))
    else:
        inits.append(numpy_helper.from_array(y_constant, "y"))
    node = helper.make_node("Einsum", ["x", "y"], ["out"], equation=equation)
    out_shape = np.einsum(equation, np.zeros(x_shape), np.zeros(y_shape)).shape
    graph = helper.make_graph([node], "einsum", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def _run(model, feeds):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.mark.parametrize("constant", [False, True], ids=["input", "constant"])
@pytest.mark.parametrize("equation,x_shape,y_shape", CASES)
def test_lowered_einsums_give_numpys_values(equation, x_shape, y_shape, constant):
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(np.float32)
    y = rng.normal(size=y_shape).astype(np.float32)
    model, replaced = einsums_to_matmuls(_model(equation, x_shape, y_shape, y if constant else None))
    onnx.checker.check_model(model)
    assert replaced == 1
    ops = [n.op_type for n in model.graph.node]
    assert "Einsum" not in ops and ops.count("MatMul") == 1, ops
    if constant:  # the constant is arranged once, here: no Transpose of it at each call, the original dropped
        assert [i.name for i in model.graph.initializer] != ["y"]
        assert all(n.input[0] != "y" for n in model.graph.node)
    feeds = {"x": x} if constant else {"x": x, "y": y}
    np.testing.assert_allclose(_run(model, feeds), np.einsum(equation, x, y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("equation,x_shape,y_shape", [
    ("ii,ij->j", (3, 3), (3, 4)),  # a letter twice in a term (a diagonal)
    ("ij,jk->i", (3, 4), (4, 5)),  # summed within one operand
    ("...j,jk->...k", (2, 3, 4), (4, 5)),  # an ellipsis
])
def test_what_it_cannot_lower_stays_an_einsum(equation, x_shape, y_shape):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=x_shape).astype(np.float32), rng.normal(size=y_shape).astype(np.float32)
    model, replaced = einsums_to_matmuls(_model(equation, x_shape, y_shape))
    assert replaced == 0 and [n.op_type for n in model.graph.node] == ["Einsum"]
    np.testing.assert_allclose(_run(model, {"x": x, "y": y}), np.einsum(equation, x, y), rtol=1e-5, atol=1e-5)
