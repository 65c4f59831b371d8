"""bench_elementwise_torch.py - PyTorch's side of scripts/bench_elementwise.lua.

The same ops on the same shapes (NCHW contiguous, float32), best of
`repeats` wall-clock calls after a warm-up call; backward ops are timed as
torch.autograd.grad through one node with the graph retained.

Usage: /usr/bin/python3 scripts/bench_elementwise_torch.py [--threads N] [--json] [--step] [repeats]
--step: the kernel time of one ResNet56 -> ResNet20 distillation step at batch
64 (per-op best times times the calls a step makes), as the Lua script's --step.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [(64, 16, 32, 32), (64, 64, 8, 8), (64, 32, 32, 32), (64, 256, 8, 8)]


def best(f, repeats):
    f()
    b = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t0)
    return b


def bn_params(c):
    return torch.rand(c) + 0.5, torch.randn(c), torch.zeros(c), torch.ones(c)


def op_bn_fwd(training):
    def build(shape):
        x = torch.randn(shape)
        w, b, rm, rv = bn_params(shape[1])

        def f():
            with torch.no_grad():
                F.batch_norm(x, rm, rv, w, b, training=training)
        return f
    return build


def backward_of(make):
    def build(shape):
        y, leaves = make(shape)
        g = torch.randn(shape)
        return lambda: torch.autograd.grad(y, leaves, g, retain_graph=True)
    return build


def bn_graph(shape):
    x = torch.randn(shape, requires_grad=True)
    w, b, rm, rv = bn_params(shape[1])
    w.requires_grad_()
    b.requires_grad_()
    return F.batch_norm(x, rm, rv, w, b, training=True), (x, w, b)


def relu_graph(shape):
    x = torch.randn(shape, requires_grad=True)
    return torch.relu(x), (x,)


def unary(fn):
    def build(shape):
        x = torch.randn(shape)

        def f():
            with torch.no_grad():
                fn(x)
        return f
    return build


def binary(fn):
    def build(shape):
        x, y = torch.randn(shape), torch.randn(shape)

        def f():
            with torch.no_grad():
                fn(x, y)
        return f
    return build


OPS = [
    ("bn_train_fwd", 2, op_bn_fwd(training=True)),
    ("bn_eval_fwd", 2, op_bn_fwd(training=False)),
    ("bn_train_bwd", 3, backward_of(bn_graph)),
    ("relu_fwd", 2, unary(torch.relu)),
    ("relu_bwd", 3, backward_of(relu_graph)),
    ("add", 3, binary(lambda x, y: x + y)),
    ("add_relu", 3, binary(lambda x, y: torch.relu(x + y))),
    ("mul", 3, binary(lambda x, y: x * y)),
    ("add_", 3, binary(lambda x, y: x.add_(y))),
    ("mul_scalar", 2, unary(lambda x: x * 0.5)),
]


STEP_SHAPES = [(64, 16, 32, 32), (64, 32, 16, 16), (64, 64, 8, 8)]
STEP_CALLS = {
    "bn_train_fwd": (7, 7, 7), "bn_train_bwd": (7, 7, 7), "bn_eval_fwd": (19, 19, 19),
    "relu_fwd": (7 + 19, 6 + 18, 6 + 18), "relu_bwd": (7, 6, 6), "add": (3 + 9, 3 + 9, 3 + 9),
}
KIND = {"bn_train_fwd": "batchnorm", "bn_train_bwd": "batchnorm", "bn_eval_fwd": "batchnorm"}


def run_step(repeats, threads):
    by_op, totals = {}, {"batchnorm": 0.0, "elementwise": 0.0}
    for si, shape in enumerate(STEP_SHAPES):
        for name, _, build in OPS:
            if name in STEP_CALLS:
                s = best(build(shape), repeats) * STEP_CALLS[name][si]
                by_op[name] = by_op.get(name, 0.0) + s
                totals[KIND.get(name, "elementwise")] += s
    print(f"kernel time of one ResNet56 -> ResNet20 distillation step (batch 64), torch "
          f"{torch.__version__}, best of {repeats}, threads {threads}")
    for name in ("bn_train_fwd", "bn_train_bwd", "bn_eval_fwd", "relu_fwd", "relu_bwd", "add"):
        print(f"  {name:<14} {by_op[name] * 1e3:8.2f} ms/step")
    for kind in ("batchnorm", "elementwise"):
        print(f"  {kind:<14} {totals[kind] * 1e3:8.2f} ms/step")


def main():
    args = sys.argv[1:]
    threads, as_json, repeats, step = 2, False, 20, False
    i = 0
    while i < len(args):
        if args[i] == "--threads":
            threads = int(args[i + 1])
            i += 1
        elif args[i] == "--json":
            as_json = True
        elif args[i] == "--step":
            step = True
        else:
            repeats = int(args[i])
        i += 1
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    if step:
        run_step(repeats, threads)
        return
    results = []
    for shape in SHAPES:
        n = 1
        for d in shape:
            n *= d
        for name, floats, build in OPS:
            s = best(build(shape), repeats)
            results.append({"op": name, "shape": "x".join(map(str, shape)), "ms": s * 1e3,
                            "gbs": floats * 4 * n / s * 1e-9})
    if as_json:
        print(json.dumps(results))
        return
    print(f"torch {torch.__version__}, best of {repeats}, threads {threads}")
    print(f"{'op':<14} {'shape':<12} {'ms/call':>10} {'GB/s':>8}")
    for r in results:
        print(f"{r['op']:<14} {r['shape']:<12} {r['ms']:>10.4f} {r['gbs']:>8.2f}")


if __name__ == "__main__":
    main()
