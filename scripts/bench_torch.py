#!/usr/bin/python3
"""PyTorch twin of scripts/bench_train.lua (issue 9): the same workloads on
random data with our own CIFAR-ResNet definitions (RepDistiller shapes).

  /usr/bin/python3 scripts/bench_torch.py --teacher resnet32x4 --student resnet8x4 \
      --batch 64 --steps 20 --warmup 3 [--threads 2] [--tuned] [--only distill|ce|eval]
      [--json]

distillation step: teacher eval forward under no_grad, student forward and
backward of 0.1 CE + 0.9 KD(T=4) + 1.0 InfoNCE (FSECD instance policy,
tau 0.1) on a linear embedding of the student's pooled feature into the
teacher's, SGD (lr 0.05, momentum 0.9, wd 5e-4) over student + embedding.

--tuned: OpenBLAS held to 1 thread (OPENBLAS_NUM_THREADS=1, set before torch
is imported), glibc kept from trimming/mmapping activation buffers
(MALLOC_TRIM_THRESHOLD_/MALLOC_MMAP_THRESHOLD_, which glibc reads at start-up,
so the script re-executes itself with them set), channels_last memory format.
Each of those is also a separate flag.

--fold-teacher (off by default; the issue's reference runs the teacher as
is): folds the eval teacher's BatchNorms into its convolutions with
torch.fx.experimental.optimization.fuse, the counterpart of our
nn.fold_batchnorm (scripts/bench_train.lua folds by default, as the
trainer does), for a like-for-like comparison of that fast path.
"""
import argparse
import json
import os
import sys
import time


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--teacher", default="resnet32x4")
    p.add_argument("--student", default="resnet8x4")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--only", choices=["distill", "ce", "eval"])
    p.add_argument("--tuned", action="store_true", help="all three tunings below")
    p.add_argument("--blas1", action="store_true", help="OpenBLAS 1 thread")
    p.add_argument("--malloc", action="store_true", help="no malloc trim / mmap for buffers")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--json", action="store_true")
    p.add_argument("--fold-teacher", action="store_true",
                   help="fold the teacher's BNs into its convs (torch.fx fuse)")
    a = p.parse_args()
    if a.tuned:
        a.blas1 = a.malloc = a.channels_last = True
    return a


args = parse()

# Environment tunings must precede torch's import (and, for glibc, the process).
if args.malloc and os.environ.get("BENCH_TORCH_REEXEC") != "1":
    env = dict(os.environ)
    env["MALLOC_TRIM_THRESHOLD_"] = str(1 << 30)
    env["MALLOC_MMAP_THRESHOLD_"] = str(1 << 30)
    env["MALLOC_TOP_PAD_"] = str(256 << 20)
    env["BENCH_TORCH_REEXEC"] = "1"
    if args.blas1:
        env["OPENBLAS_NUM_THREADS"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, env)
if args.blas1:
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(0)


# ------------------------------------------------------------ CIFAR ResNets

class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res = x if self.downsample is None else self.downsample(x)
        return F.relu(out + res)


class CifarResNet(nn.Module):
    def __init__(self, depth, widths, num_classes):
        super().__init__()
        n = (depth - 2) // 6
        self.inplanes = widths[0]
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.layer1 = self._layer(widths[1], n, 1)
        self.layer2 = self._layer(widths[2], n, 2)
        self.layer3 = self._layer(widths[3], n, 2)
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def _layer(self, planes, n, stride):
        blocks = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes
        blocks += [BasicBlock(planes, planes) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(f0)
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        pooled = F.avg_pool2d(f3, 8).flatten(1)
        return {"feats": [f0, f1, f2, f3, pooled], "pooled": pooled, "logits": self.fc(pooled)}


CONFIGS = {
    "resnet8": (8, (16, 16, 32, 64)), "resnet14": (14, (16, 16, 32, 64)),
    "resnet20": (20, (16, 16, 32, 64)), "resnet32": (32, (16, 16, 32, 64)),
    "resnet44": (44, (16, 16, 32, 64)), "resnet56": (56, (16, 16, 32, 64)),
    "resnet110": (110, (16, 16, 32, 64)),
    "resnet8x4": (8, (32, 64, 128, 256)), "resnet32x4": (32, (32, 64, 128, 256)),
}


def create(name, num_classes):
    depth, widths = CONFIGS[name]
    return CifarResNet(depth, widths, num_classes)


# ----------------------------------------------------------------- workload

def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    B = args.batch
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    teacher = create(args.teacher, args.classes).to(memory_format=fmt).eval()
    if args.fold_teacher:
        from torch.fx.experimental.optimization import fuse
        teacher = fuse(teacher)
    student = create(args.student, args.classes).to(memory_format=fmt).train()
    ds = student.fc.in_features
    dt = teacher.fc.in_features
    embed = nn.Linear(ds, dt)
    x = torch.randn(B, 3, 32, 32).contiguous(memory_format=fmt)
    y = torch.randint(0, args.classes, (B,))
    params = list(student.parameters()) + list(embed.parameters())
    opt = torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=5e-4)
    ce_opt = torch.optim.SGD(student.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    targets = torch.arange(B)
    tau, T = 0.1, 4.0

    def kd_loss(s, t):
        return F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1),
                        reduction="batchmean") * (T * T)

    def fsecd_loss(fs, ft):
        z = F.normalize(embed(fs), dim=1, eps=1e-8)
        t = F.normalize(ft, dim=1, eps=1e-8)
        return F.cross_entropy(z @ t.t() / tau, targets)

    def distill_step():
        opt.zero_grad()
        with torch.no_grad():
            t_out = teacher(x)
        s_out = student(x)
        loss = (0.1 * F.cross_entropy(s_out["logits"], y)
                + 0.9 * kd_loss(s_out["logits"], t_out["logits"])
                + 1.0 * fsecd_loss(s_out["pooled"], t_out["pooled"]))
        loss.backward()
        opt.step()

    def ce_step():
        ce_opt.zero_grad()
        loss = F.cross_entropy(student(x)["logits"], y)
        loss.backward()
        ce_opt.step()

    def eval_fwd():
        with torch.no_grad():
            teacher(x)

    work = {"distill": distill_step, "ce": ce_step, "eval": eval_fwd}
    folded = " (folded)" if args.fold_teacher else ""
    titles = {"distill": f"distill step {args.teacher} -> {args.student}{folded}",
              "ce": f"CE step {args.student}", "eval": f"eval forward {args.teacher}{folded}"}
    order = [args.only] if args.only else ["distill", "ce", "eval"]
    results = {}
    for name in order:
        fn = work[name]
        for _ in range(args.warmup):
            fn()
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        times.sort()
        n = len(times)
        med = times[n // 2] if n % 2 else (times[n // 2 - 1] + times[n // 2]) / 2
        results[name] = {"median": med, "min": times[0], "max": times[-1],
                         "images_per_s": B / med}
        if not args.json:
            print(f"{titles[name]:40s} batch {B:3d}: median {med * 1e3:8.1f} ms  "
                  f"min {times[0] * 1e3:8.1f}  max {times[-1] * 1e3:8.1f}  {B / med:7.1f} img/s")
    results["peak_rss_mb"] = peak_rss_mb()
    if args.json:
        print(json.dumps(results))
    else:
        print(f"peak RSS (VmHWM) {results['peak_rss_mb']:.1f} MB  "
              f"(torch {torch.__version__}, threads {torch.get_num_threads()}, "
              f"tuned: blas1={args.blas1} malloc={args.malloc} channels_last={args.channels_last})")


if __name__ == "__main__":
    main()
