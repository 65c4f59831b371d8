"""bench_crd_torch.py - PyTorch's side of scripts/bench_crd.lua.

Reads lines "N B K+1 D" from stdin; for each prints "forward_s forward_backward_s":
the CRD reference implementation's scores, exp(bmm(index_select(bank, idx), v) / T),
and their gradient to v, best of `repeats` wall-clock calls after a warm-up.

Usage: /usr/bin/python3 scripts/bench_crd_torch.py REPEATS [THREADS] < shapes
"""
import sys

import torch

from bench_elementwise_torch import best


def main():
    repeats = int(sys.argv[1])
    if len(sys.argv) > 2 and sys.argv[2]:
        torch.set_num_threads(int(sys.argv[2]))
    torch.manual_seed(1)
    for line in sys.stdin:
        n, b, k1, d = (int(x) for x in line.split())
        bank = torch.randn(n, d) * 0.1
        idx = torch.randint(0, n, (b, k1))
        v = (torch.randn(b, d) * 0.1).requires_grad_()

        def scores():
            rows = torch.index_select(bank, 0, idx.view(-1)).view(b, k1, d)
            return torch.exp(torch.bmm(rows, v.view(b, d, 1)).squeeze(2) / 0.07)

        def forward():
            with torch.no_grad():
                scores()

        def both():
            v.grad = None
            scores().sum().backward()

        print(best(forward, repeats), best(both, repeats), flush=True)


if __name__ == "__main__":
    main()
