"""The dot-product test of qf-grad's adjoint rules, one case per rule.

`gen DIR` writes DIR/base.mlir, DIR/{plus,minus,plus2,minus2}.mlir and DIR/x.npy. Each case c
has its own weight W_c (a constant [5, 6] read by a tosa.matmul, the only kind of value
qf-grad differentiates for), computes y = x · W_c ([1, 4, 6]), applies the op under test
(with broadcasting, fan-out or masks where the rule has them) and returns
out_c = f(y) ⊙ V_c for a fixed random V_c. In plus.mlir / minus.mlir every W_c is
W_c ± h U_c (plus2 / minus2: ± 2h U_c) for a fixed random direction U_c.

`check DIR` reads the gradient function's results (DIR/grad/grad.w<c>.npy, from base.mlir
through qf-grad with loss=sum, i.e. L = Σ_c Σ out_c) and the outputs of the two perturbed
forward modules (DIR/plus, DIR/minus) and checks, per case, ⟨dL/dW_c, U_c⟩ against the
central difference (L_c(W + hU) − L_c(W − hU)) / 2h (relative 1e-3, and 1e-4 absolute).
Prints one line per case and PASS or FAIL.
"""
import os
import sys

import numpy as np

M, K, N = 4, 5, 6
H = 1e-2


def t(shape, elem="f32"):
    return "tensor<" + "x".join(str(d) for d in shape) + "x" + elem + ">"


def dense(a, elem="f32"):
    a = np.asarray(a)

    def nested(x):
        if x.ndim == 0:
            if elem == "i1":
                return "true" if x else "false"
            return repr(float(x))
        return "[" + ", ".join(nested(v) for v in x) + "]"
    return f"dense<{nested(a)}> : {t(a.shape, elem)}"


class Case:
    """Builds one case's ops as text; values are named %c<i>_<n>."""

    def __init__(self, index, rng):
        self.i, self.rng, self.n, self.lines = index, rng, 0, []

    def val(self):
        self.n += 1
        return f"%c{self.i}_{self.n}"

    def const(self, a, elem="f32"):
        v = self.val()
        a = np.asarray(a)
        self.lines.append(f'{v} = "tosa.const"() <{{values = {dense(a, elem)}}}> : () -> {t(a.shape, elem)}')
        return v, list(a.shape), t(a.shape, elem)

    def shape(self, dims):
        v = self.val()
        self.lines.append(f"{v} = tosa.const_shape {{values = dense<[{', '.join(map(str, dims))}]> : "
                          f"tensor<{len(dims)}xindex>}} : () -> !tosa.shape<{len(dims)}>")
        return v

    def op(self, text, operands, result_shape, elem="f32"):
        """`text` is the op with its attributes; operands are (value, shape[, elem])."""
        v = self.val()
        names = ", ".join(o[0] for o in operands)
        types = ", ".join(o[2] if len(o) > 2 else t(o[1]) for o in operands)
        name, _, attrs = text.partition(" ")
        self.lines.append(f"{v} = {name} {names} {attrs} : ({types}) -> {t(result_shape, elem)}")
        return v, list(result_shape)

    def zp(self):
        return self.const(np.zeros(1, np.float32))

    def unary(self, name, a):
        return self.op(name, [a], a[1])

    def binary(self, name, a, b):
        out = [max(x, y) for x, y in zip(a[1], b[1])]
        if name == "tosa.mul":
            s = self.val()
            self.lines.append(f'{s} = "tosa.const"() <{{values = dense<0> : tensor<1xi8>}}> : () -> tensor<1xi8>')
            return self.op(name, [a, b, (s, [1], "tensor<1xi8>")], out)
        return self.op(name, [a, b], out)

    def positive(self, y):
        """y² + 1, away from zero."""
        return self.binary("tosa.add", self.binary("tosa.mul", y, y), self.const(np.ones((1, 1, 1), np.float32)))

    def matmul(self, a, b):
        zp = self.zp()
        return self.op("tosa.matmul", [a, b, zp, zp], [a[1][0], a[1][1], b[1][2]])

    def reduce(self, name, a, axis):
        out = list(a[1])
        out[axis] = 1
        return self.op(f"{name} {{axis = {axis} : i32}}", [a], out)

    def reshape(self, a, dims):
        s = self.shape(dims)
        return self.op("tosa.reshape", [a, (s, [len(dims)], f"!tosa.shape<{len(dims)}>")], dims)

    def rand(self, shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)


def build_cases():
    """Each entry: (name, function(case, y) -> out value)."""
    def softmax(c, y):
        m = c.reduce("tosa.reduce_max", y, 2)
        e = c.unary("tosa.exp", c.binary("tosa.sub", y, m))
        return c.binary("tosa.mul", e, c.unary("tosa.reciprocal", c.reduce("tosa.reduce_sum", e, 2)))

    def slice_(c, y):
        st, sz = c.shape([0, 1, 2]), c.shape([1, 2, 3])
        return c.op("tosa.slice", [y, (st, [3], "!tosa.shape<3>"), (sz, [3], "!tosa.shape<3>")], [1, 2, 3])

    def concat(c, y, axis, other):
        out = list(y[1])
        out[axis] += other[1][axis]
        return c.op(f"tosa.concat {{axis = {axis} : i32}}", [y, other], out)

    def select(c, y, active_true):
        p = c.const(np.array([True, False, False, True]).reshape(1, M, 1), "i1")
        other = c.const(c.rand((1, 1, N)))
        ops = [p, y, other] if active_true else [p, other, y]
        return c.op("tosa.select", ops, [1, M, N])

    def negate(c, y):
        return c.op("tosa.negate", [y, c.zp(), c.zp()], y[1])

    return [
        ("matmul-lhs", lambda c, y: c.matmul(y, c.const(c.rand((1, N, 3))))),
        ("matmul-both", lambda c, y: c.matmul(y, c.op("tosa.transpose {perms = array<i32: 0, 2, 1>}", [y], [1, N, M]))),
        ("add-broadcast-other", lambda c, y: c.binary("tosa.add", y, c.const(c.rand((1, 1, N))))),
        ("add-broadcast-active", lambda c, y: c.binary("tosa.add", c.reduce("tosa.reduce_sum", y, 1), c.const(c.rand((1, M, N))))),
        ("sub", lambda c, y: c.binary("tosa.sub", c.const(c.rand((1, M, 1))), y)),
        ("mul-square", lambda c, y: c.binary("tosa.mul", y, y)),
        ("mul-broadcast", lambda c, y: c.binary("tosa.mul", c.reduce("tosa.reduce_sum", y, 2), y)),
        ("reciprocal", lambda c, y: c.unary("tosa.reciprocal", c.positive(y))),
        ("rsqrt", lambda c, y: c.unary("tosa.rsqrt", c.positive(y))),
        ("exp", lambda c, y: c.unary("tosa.exp", y)),
        ("log", lambda c, y: c.unary("tosa.log", c.positive(y))),
        ("sigmoid", lambda c, y: c.unary("tosa.sigmoid", y)),
        ("tanh", lambda c, y: c.unary("tosa.tanh", y)),
        ("erf", lambda c, y: c.unary("tosa.erf", y)),
        ("pow", lambda c, y: c.binary("tosa.pow", c.positive(y), c.const(np.full((1, 1, 1), 1.5, np.float32)))),
        ("negate", negate),
        ("reduce-sum", lambda c, y: c.reduce("tosa.reduce_sum", y, 2)),
        ("reduce-max", lambda c, y: c.reduce("tosa.reduce_max", y, 1)),
        ("reshape", lambda c, y: c.reshape(y, [2, 12])),
        ("transpose", lambda c, y: c.op("tosa.transpose {perms = array<i32: 2, 0, 1>}", [y], [N, 1, M])),
        ("slice", slice_),
        ("concat-other", lambda c, y: concat(c, y, 2, c.const(c.rand((1, M, 2))))),
        ("concat-self", lambda c, y: concat(c, y, 1, y)),
        ("select-true", lambda c, y: select(c, y, True)),
        ("select-false", lambda c, y: select(c, y, False)),
        ("softmax", softmax),
    ]


def module(sign):
    rng = np.random.default_rng(1)
    funcs, results, types, names = [], [], [], []
    for i, (name, fn) in enumerate(build_cases()):
        c = Case(i, rng)
        w = c.rand((K, N))
        u = c.rand((K, N))
        wv = c.const(w + sign * H * u)
        c.lines[-1] = c.lines[-1].replace("}> :", f'}}> {{qf.name = "w{i}"}} :')
        y = c.matmul(("%x", [1, M, K]), c.reshape(wv, [1, K, N]))
        out = fn(c, y)
        out = c.binary("tosa.mul", out, c.const(c.rand(out[1])))
        funcs.extend(c.lines)
        results.append(out[0])
        types.append(t(out[1]))
        names.append(f'{{qf.name = "out.{i}.{name}"}}')
    sig = ", ".join(f"{ty} {n}" for ty, n in zip(types, names))
    body = "\n    ".join(funcs)
    return (f"func.func @main(%x: {t([1, M, K])} {{qf.name = \"x\"}}) -> ({sig}) {{\n    {body}\n"
            f"    return {', '.join(results)} : {', '.join(types)}\n}}\n")


def gen(folder):
    os.makedirs(folder, exist_ok=True)
    for fname, sign in (("base", 0), ("plus", 1), ("minus", -1), ("plus2", 2),
                        ("minus2", -2)):
        with open(os.path.join(folder, fname + ".mlir"), "w") as f:
            f.write(module(sign))
    np.save(os.path.join(folder, "x.npy"), np.random.default_rng(2).standard_normal((1, M, K)).astype(np.float32))


def check(folder):
    rng = np.random.default_rng(1)
    failures = []
    for i, (name, fn) in enumerate(build_cases()):
        # The same draws as module(): W, U, then the case's own.
        rng.standard_normal((K, N))
        u = rng.standard_normal((K, N)).astype(np.float32).astype(np.float64)
        g = np.load(os.path.join(folder, "grad", f"grad.w{i}.npy")).astype(np.float64)
        out = f"out.{i}.{name}.npy"
        loss = {k: np.load(os.path.join(folder, k, out)).astype(np.float64)
                for k in ("plus", "minus", "plus2", "minus2")}
        numeric = (8 * (loss["plus"].sum() - loss["minus"].sum())
                   - (loss["plus2"].sum() - loss["minus2"].sum())) / (12 * H)
        analytic = (g * u).sum()
        scale = np.abs(loss["plus"]).sum()
        ok = abs(numeric - analytic) <= 1e-3 * abs(numeric) + 1e-6 * scale / H
        print(f"{name:22s} <dW,u> {analytic:+.6e} finite difference {numeric:+.6e} {'ok' if ok else 'WRONG'}")
        if not ok:
            failures.append(name)
        # Skip this case's remaining draws by replaying them.
        fn(Case(i, rng), ("%y", [1, M, N]))
        rng.standard_normal(_out_shape(name))
    print("PASS" if not failures else "FAIL " + ", ".join(failures))
    sys.exit(1 if failures else 0)


def _out_shape(name):
    c = Case(0, np.random.default_rng(0))
    fns = dict(build_cases())
    return fns[name](c, ("%y", [1, M, N]))[1]


if __name__ == "__main__":
    {"gen": gen, "check": check}[sys.argv[1]](sys.argv[2])
