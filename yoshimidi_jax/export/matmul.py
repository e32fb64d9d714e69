"""Einsum nodes of an ONNX graph rewritten as MatMul (with the Transposes and
Reshapes around it), the products the exported decode step is made of.

jax2onnx writes every dot_general that is not a plain 2-D product as an
Einsum node. onnxruntime runs Einsum by planning transposes and products at
each call; in onnxruntime-web (WASM, one thread) the tiny model's 35 Einsums
cost ~0.2 ms of a ~1.8 ms call more than the same products as MatMul.
`einsums_to_matmuls` lowers each two-operand Einsum with no repeated or
summed-alone letters to: operands transposed to [batch..., free..., summed...]
and [batch..., summed..., free...] (a constant operand is transposed once, here,
into a new initializer), flattened to 3-D, one MatMul, reshaped and transposed
to the equation's output. The products and their order of summation are
those of a matrix product either way; export/step.py checks the graph against
JAX after the rewrite.
"""

from __future__ import annotations

import numpy as np


def _parse(equation: str) -> tuple[str, str, str] | None:
    """'ab,bc->ac' -> ('ab', 'bc', 'ac'); None for what this pass does not lower
    (one operand, ellipses, a letter twice in one term, a letter in one operand
    only that the output drops)."""
    if "->" not in equation or "." in equation:
        return None
    inputs, out = equation.replace(" ", "").split("->")
    terms = inputs.split(",")
    if len(terms) != 2:
        return None
    a, b = terms
    if any(len(set(t)) != len(t) for t in (a, b, out)):
        return None
    if any(c not in a and c not in b for c in out):
        return None
    if any(c not in b and c not in out for c in a) or any(c not in a and c not in out for c in b):
        return None  # summed within one operand: not a product
    return a, b, out


def einsums_to_matmuls(model):
    """The onnx ModelProto with each Einsum it can lower replaced (in place,
    and returned), and the count replaced. Shapes come from onnx's shape
    inference; an Einsum whose operand shapes are unknown is left as it is."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in vi.type.tensor_type.shape.dim]
        shapes[vi.name] = dims
    constants = {init.name: init for init in graph.initializer}
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    users = {}
    for node in graph.node:
        for name in node.input:
            users[name] = users.get(name, 0) + 1
    counter = [0]

    def fresh(kind: str) -> str:
        counter[0] += 1
        return f"einsum_mm_{kind}_{counter[0]}"

    def constant(array: np.ndarray) -> str:
        name = fresh("const")
        graph.initializer.append(numpy_helper.from_array(array, name))
        return name

    new_nodes, replaced, dropped = [], 0, set()
    for node in graph.node:
        parsed = None
        if node.op_type == "Einsum":
            equation = next(a.s.decode() for a in node.attribute if a.name == "equation")
            parsed = _parse(equation)
        if parsed is None or any(min(shapes.get(n, [-1]) or [0]) < 0 for n in node.input):
            new_nodes.append(node)
            continue
        a, b, out = parsed
        (x, y), result = node.input, node.output[0]
        size = {**dict(zip(a, shapes[x])), **dict(zip(b, shapes[y]))}
        batch = [c for c in out if c in a and c in b]
        free_a = [c for c in a if c not in b]
        free_b = [c for c in b if c not in a]
        summed = [c for c in a if c in b and c not in out]
        nodes = []

        def arrange(name: str, term: str, order: list[str], flat: list[int]) -> str:
            """`name` (letters `term`) transposed to `order` and reshaped to `flat`."""
            perm = [term.index(c) for c in order]
            if name in constants:
                array = numpy_helper.to_array(constants[name]).transpose(perm).reshape(flat)
                if users.get(name, 0) == 1:
                    dropped.add(name)
                return constant(np.ascontiguousarray(array))
            if perm != list(range(len(perm))):
                moved = fresh("t")
                nodes.append(helper.make_node("Transpose", [name], [moved], perm=perm, name=fresh("transpose")))
                name = moved
            if [size[c] for c in order] != flat:
                flattened = fresh("r")
                nodes.append(helper.make_node("Reshape", [name, constant(np.asarray(flat, np.int64))], [flattened],
                                              name=fresh("reshape")))
                name = flattened
            return name

        prod = lambda cs: int(np.prod([size[c] for c in cs], dtype=np.int64))  # noqa: E731
        batch_dims = [size[c] for c in batch]
        lhs = arrange(x, a, batch + free_a + summed, batch_dims + [prod(free_a), prod(summed)])
        rhs = arrange(y, b, batch + summed + free_b, batch_dims + [prod(summed), prod(free_b)])
        product = fresh("mm")
        nodes.append(helper.make_node("MatMul", [lhs, rhs], [product], name=fresh("matmul")))
        got = batch + free_a + free_b  # the product's letters once unflattened
        if [size[c] for c in got] != batch_dims + [prod(free_a), prod(free_b)]:
            unflat = fresh("r")
            nodes.append(helper.make_node("Reshape", [product, constant(np.asarray([size[c] for c in got], np.int64))],
                                          [unflat], name=fresh("reshape")))
            product = unflat
        perm = [got.index(c) for c in out]
        if perm != list(range(len(perm))):
            nodes.append(helper.make_node("Transpose", [product], [result], perm=perm, name=fresh("transpose")))
        else:
            nodes.append(helper.make_node("Identity", [product], [result], name=fresh("identity")))
        new_nodes.extend(nodes)
        replaced += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    kept = [init for init in graph.initializer if init.name not in dropped]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return model, replaced
