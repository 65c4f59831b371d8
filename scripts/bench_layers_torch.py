#!/usr/bin/python3
"""PyTorch twin of scripts/bench_layers.lua: the same convolution layers
with channels-last oneDNN convolutions (PyTorch's fastest CPU layout), best
of --repeats, ms of the forward under no_grad and of forward + backward
(input and weight gradients). Prints one JSON object: {"layer": [fwd, fb]}.

  /usr/bin/python3 scripts/bench_layers_torch.py --batch 64 --repeats 10 --threads 2 LAYER...

A layer is "cin,cout,size,k,stride" (padding k // 2). Respects
DNNL_MAX_CPU_ISA / ATEN_CPU_CAPABILITY like any PyTorch program.
"""
import argparse
import json
import os
import time

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=64)
p.add_argument("--repeats", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
p.add_argument("layers", nargs="+")
args = p.parse_args()
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)
cl = torch.channels_last


def best(fn):
    fn()
    t = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fn()
        t = min(t, time.perf_counter() - t0)
    return t * 1e3


out = {}
for spec in args.layers:
    cin, cout, size, k, stride = (int(v) for v in spec.split(","))
    x = torch.randn(args.batch, cin, size, size).contiguous(memory_format=cl)
    w = (torch.randn(cout, cin, k, k) * (2.0 / (cin * k * k)) ** 0.5).contiguous(memory_format=cl)
    pad = k // 2
    with torch.no_grad():
        y = F.conv2d(x, w, None, stride, pad)
    dy = torch.randn_like(y).contiguous(memory_format=cl)
    xg = x.clone().requires_grad_(True)
    wg = w.clone().requires_grad_(True)

    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, None, stride, pad)

    def fwd_bwd():
        xg.grad = None
        wg.grad = None
        F.conv2d(xg, wg, None, stride, pad).backward(dy)

    out[spec] = [best(fwd), best(fwd_bwd)]
print(json.dumps(out))
