"""QPY records of standalone ``Parameter`` and ``ParameterExpression`` values, for encoding.py.

The qiskit-ibm-runtime 0.11 clients encode a ``Parameter`` as a QPY PARAMETER record and a
``ParameterExpression`` as a QPY v3 PARAMETER_EXPR record whose expression is sympy ``srepr`` text.
qiskit 2.x neither writes that format nor exposes a public reader, so both directions live here:

* reading parses the ``srepr`` text with an allow-listed AST walk (never ``eval``, never sympy);
* writing renders qiskit 2.x's expression replay as ``srepr`` text that sympy (the old client) and
  the reader here both understand.

qiskit is imported inside the functions only.
"""

from __future__ import annotations

import ast
import cmath
import math
import struct
import uuid
from collections.abc import Callable
from typing import Any

__all__ = [
    "read_parameter",
    "read_parameter_expression",
    "write_parameter",
    "write_parameter_expression",
]

_PARAMETER = "!H16s"  # name size, uuid
_VECTOR_ELEMENT = "!HQ16sQ"  # vector name size, vector size, uuid, index
_EXPR = "!QQ"  # map elements, expression size
_MAP_ELEM = "!ccQ"  # symbol type, value type, value size
_MAX_SREPR = 1 << 20

_UNARY_METHODS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "asin": "arcsin",
    "acos": "arccos",
    "atan": "arctan",
    "exp": "exp",
    "log": "log",
    "sign": "sign",
    "conjugate": "conjugate",
    "Abs": "abs",
}
_NUMBER_FUNCS: dict[str, Callable[[Any], Any]] = {
    "sin": cmath.sin,
    "cos": cmath.cos,
    "tan": cmath.tan,
    "asin": cmath.asin,
    "acos": cmath.acos,
    "atan": cmath.atan,
    "exp": cmath.exp,
    "log": cmath.log,
    "sign": lambda x: (x > 0) - (x < 0),
    "conjugate": lambda x: x.conjugate(),
    "Abs": abs,
}
_CONSTANTS = {"pi": math.pi, "E": math.e, "I": 1j}
# qiskit OpCode numbers (qiskit.circuit.parameterexpression._OP_CODE_MAP) -> srepr function names
_BINARY_OPS = {0: "add", 1: "sub", 2: "mul", 3: "div", 4: "pow", 18: "rsub", 19: "rdiv", 20: "rpow"}
_UNARY_OPS = {
    5: "sin",
    6: "cos",
    7: "tan",
    8: "asin",
    9: "acos",
    10: "exp",
    11: "log",
    12: "sign",
    14: "conjugate",
    16: "Abs",
    17: "atan",
}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, size: int) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise ValueError("truncated QPY record")
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))


def _parameter_from(reader: _Reader) -> Any:
    from qiskit.circuit import Parameter

    name_size, raw_uuid = reader.unpack(_PARAMETER)
    return Parameter(reader.take(name_size).decode("utf-8"), uuid=uuid.UUID(bytes=raw_uuid))


def _vector_element_from(reader: _Reader, vectors: dict[str, Any]) -> Any:
    from qiskit.circuit import ParameterVector

    name_size, size, raw_uuid, index = reader.unpack(_VECTOR_ELEMENT)
    name = reader.take(name_size).decode("utf-8")
    if index >= size or size > 1_000_000:
        raise ValueError(f"bad parameter vector element {name}[{index}] of {size}")
    root = uuid.UUID(int=(uuid.UUID(bytes=raw_uuid).int - index) % (1 << 128))
    key = f"{name}/{root}"
    if key not in vectors:
        vectors[key] = ParameterVector(name, size, uuid=root)
    return vectors[key][index]


def read_parameter(data: bytes) -> Any:
    """A ``Parameter`` from a QPY PARAMETER record."""
    reader = _Reader(data)
    param = _parameter_from(reader)
    if reader.pos != len(data):
        raise ValueError("trailing bytes after the PARAMETER record")
    return param


def write_parameter(param: Any) -> bytes:
    """The QPY PARAMETER record of ``param`` (a vector element is written as a plain parameter)."""
    name: bytes = param.name.encode("utf-8")
    return struct.pack(_PARAMETER, len(name), param.uuid.bytes) + name


def read_parameter_expression(data: bytes, vectors: dict[str, Any]) -> Any:
    """A ``ParameterExpression`` from a QPY v3 PARAMETER_EXPR record with sympy srepr text."""
    reader = _Reader(data)
    elements, expr_size = reader.unpack(_EXPR)
    if expr_size > _MAX_SREPR:
        raise ValueError("expression text too long")
    text = reader.take(expr_size).decode("utf-8")
    names: dict[str, Any] = {}
    for _ in range(elements):
        symbol_type, value_type, value_size = reader.unpack(_MAP_ELEM)
        if symbol_type == b"p":
            symbol = _parameter_from(reader)
        elif symbol_type == b"v":
            symbol = _vector_element_from(reader, vectors)
        else:
            raise ValueError(f"unsupported expression symbol type {symbol_type!r}")
        raw = reader.take(value_size)
        value: Any
        if value_type in (b"p", b"v"):
            value = symbol
        elif value_type == b"i":
            (value,) = struct.unpack("!q", raw)
        elif value_type == b"f":
            (value,) = struct.unpack("!d", raw)
        elif value_type == b"c":
            value = complex(*struct.unpack("!dd", raw))
        elif value_type == b"e":
            value = read_parameter_expression(raw, vectors)
        else:
            raise ValueError(f"unsupported expression value type {value_type!r}")
        names[symbol.name] = value
    return _eval_srepr(text, names)


def _eval_srepr(text: str, names: dict[str, Any]) -> Any:
    tree = ast.parse(text, mode="eval")
    return _eval_node(tree.body, names)


def _eval_node(node: ast.AST, names: dict[str, Any]) -> Any:  # noqa: C901 - one flat switch
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _eval_node(node.operand, names)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Name) and node.id in _CONSTANTS:
        return _CONSTANTS[node.id]
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(f"unsupported expression syntax: {type(node).__name__}")
    func = node.func.id
    args = [_eval_node(arg, names) for arg in node.args]  # keywords (precision=...) are ignored
    if func == "Symbol" and len(args) == 1 and isinstance(args[0], str):
        if args[0] not in names:
            raise ValueError(f"symbol {args[0]!r} is not in the parameter map")
        return names[args[0]]
    if func in ("Integer", "Float") and len(args) == 1:
        return int(args[0]) if func == "Integer" else float(args[0])
    if func == "Rational" and len(args) == 2:
        return int(args[0]) / int(args[1])
    if func in ("Add", "Mul") and args:
        acc = args[0]
        for arg in args[1:]:
            acc = acc + arg if func == "Add" else acc * arg
        return acc
    if func == "Pow" and len(args) == 2:
        base, exponent = args
        if isinstance(base, int) and isinstance(exponent, int):
            base = float(base)  # no unbounded big-integer powers from a payload
        return base**exponent
    if func in _UNARY_METHODS and len(args) == 1:
        arg = args[0]
        if isinstance(arg, (int, float, complex)):
            value = _NUMBER_FUNCS[func](arg)
            return value.real if isinstance(value, complex) and value.imag == 0 else value
        return getattr(arg, _UNARY_METHODS[func])()
    raise ValueError(f"unsupported expression function {func}({len(args)} arguments)")


def write_parameter_expression(expr: Any) -> bytes:
    """The QPY v3 PARAMETER_EXPR record of ``expr``, with its expression as sympy srepr text."""
    text = _render(_tree(expr)).encode("utf-8")
    out = [struct.pack(_EXPR, len(expr.parameters), len(text)), text]
    for symbol in sorted(expr.parameters, key=lambda p: p.name):
        vector = getattr(symbol, "vector", None)
        if vector is not None:
            name = vector.name.encode("utf-8")
            record = struct.pack(
                _VECTOR_ELEMENT, len(name), len(vector), symbol.uuid.bytes, symbol.index
            )
            out += [struct.pack(_MAP_ELEM, b"v", b"v", 0), record, name]
        else:
            out += [struct.pack(_MAP_ELEM, b"p", b"p", 0), write_parameter(symbol)]
    return b"".join(out)


def _tree(expr: Any) -> Any:
    """Replay qiskit's recorded operations into a tree of ("sym", p) / ("num", x) / (op, a[, b])."""
    from qiskit.circuit import Parameter, ParameterExpression

    def operand(value: Any) -> Any:
        if isinstance(value, Parameter):
            return ("sym", value)
        if isinstance(value, ParameterExpression):
            return _tree(value)
        if isinstance(value, (int, float, complex)):
            return ("num", value)
        raise TypeError(f"cannot encode expression operand {value!r}")

    if isinstance(expr, Parameter):
        return ("sym", expr)
    stack: list[Any] = []
    for step in expr._qpy_replay:
        code = int(getattr(step, "op", -1))
        if code not in _BINARY_OPS and code not in _UNARY_OPS:
            raise TypeError(f"cannot encode ParameterExpression {expr}: operation {code}")
        for side in (step.lhs, step.rhs):
            if side is not None:
                stack.append(operand(side))
        if code in _UNARY_OPS:
            stack.append((_UNARY_OPS[code], stack.pop()))
        else:
            rhs, lhs = stack.pop(), stack.pop()
            name = _BINARY_OPS[code]
            if name.startswith("r"):  # lhs.__rsub__(rhs) == rhs - lhs
                lhs, rhs, name = rhs, lhs, name[1:]
            stack.append((name, lhs, rhs))
    if len(stack) != 1:
        raise TypeError(f"cannot encode ParameterExpression {expr}: inconsistent replay")
    return stack[0]


def _render(node: Any) -> str:
    kind = node[0]
    if kind == "sym":
        return f"Symbol({node[1].name!r})"
    if kind == "num":
        value = node[1]
        if isinstance(value, bool) or isinstance(value, int):
            return f"Integer({int(value)})"
        if isinstance(value, float):
            return f"Float({value!r}, precision=53)"
        return (
            f"Add(Float({value.real!r}, precision=53), Mul(Float({value.imag!r}, precision=53), I))"
        )
    if kind in _UNARY_METHODS:
        return f"{kind}({_render(node[1])})"
    lhs, rhs = _render(node[1]), _render(node[2])
    if kind == "add":
        return f"Add({lhs}, {rhs})"
    if kind == "sub":
        return f"Add({lhs}, Mul(Integer(-1), {rhs}))"
    if kind == "mul":
        return f"Mul({lhs}, {rhs})"
    if kind == "div":
        return f"Mul({lhs}, Pow({rhs}, Integer(-1)))"
    return f"Pow({lhs}, {rhs})"
