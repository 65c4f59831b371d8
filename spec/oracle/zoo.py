"""PyTorch definitions of SP, CC, PKT, NST, FSP and VID (docs/distillers.md)
and their parity cases, run by `oracle.py zoo OUTDIR` (zoo.safetensors).

Each loss is written from the papers and the CRD code base's definitions,
on float32-exact float64 inputs; a case stores its inputs, its loss and the
gradients of the loss with respect to the student's features and the
distiller's own parameters (CC's embeddings, FSP's connectors, VID's
regressors and log-scales). Feature lists follow distill's convention:
feats = [stem, block_1, ..., block_k, pooled].
"""
import math
import os

import torch
import torch.nn.functional as F


def match_resolution(a, b):
    """the larger map average-pooled to the smaller one's resolution"""
    if a.shape[2] > b.shape[2]:
        a = F.adaptive_avg_pool2d(a, b.shape[2:])
    elif a.shape[2] < b.shape[2]:
        b = F.adaptive_avg_pool2d(b, a.shape[2:])
    return a, b


def sp_loss(s_blocks, t_blocks, blocks="last"):
    pairs = list(zip(s_blocks, t_blocks))
    if blocks == "last":
        pairs = pairs[-1:]
    total = 0
    for s, t in pairs:
        n = s.shape[0]
        gs = F.normalize(s.reshape(n, -1) @ s.reshape(n, -1).t(), dim=1)
        gt = F.normalize(t.reshape(n, -1) @ t.reshape(n, -1).t(), dim=1)
        total = total + ((gt - gs) ** 2).sum() / (n * n)
    return total


def pkt_loss(s, t, eps=1e-7):
    def probabilities(f):
        f = f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)
        sim = (f @ f.t() + 1) / 2
        return sim / sim.sum(1, keepdim=True)

    ps, pt = probabilities(s), probabilities(t)
    return (pt * torch.log((pt + eps) / (ps + eps))).mean()


def cc_residual_loss(s, t, Ws, bs, Wt, bt):
    delta = (F.linear(s, Ws, bs) - F.linear(t, Wt, bt)).abs()
    return (delta[:-1] * delta[1:]).sum(1).mean()


def cc_gaussian_loss(s, t, gamma=0.4, order=2):
    def correlation(f):
        f = F.normalize(f, dim=1)
        sim = f @ f.t()
        corr = torch.zeros_like(sim)
        for p in range(order + 1):
            corr = corr + math.exp(-2 * gamma) * (2 * gamma) ** p / math.factorial(p) * sim ** p
        return corr

    return F.mse_loss(correlation(s), correlation(t))


def nst_loss(s_blocks, t_blocks, degree=2, c=0.0):
    def kernel_mean(a, b):
        # every pair of channels of a sample, as the CRD code base's broadcast
        return ((a.unsqueeze(1) * b.unsqueeze(2)).sum(-1) + c).pow(degree).mean()

    total = 0
    for s, t in zip(s_blocks, t_blocks):
        s, t = match_resolution(s, t)
        s = F.normalize(s.reshape(s.shape[0], s.shape[1], -1), dim=2)
        t = F.normalize(t.reshape(t.shape[0], t.shape[1], -1), dim=2)
        total = total + kernel_mean(t, t).detach() + kernel_mean(s, s) - 2 * kernel_mean(s, t)
    return total


def fsp_matrices(feats):
    out = []
    for bot, top in zip(feats[:-1], feats[1:]):
        bot, top = match_resolution(bot, top)
        b = bot.shape[0]
        prod = bot.reshape(b, 1, bot.shape[1], -1) * top.reshape(b, top.shape[1], 1, -1)
        out.append(prod.mean(-1))
    return out


def fsp_loss(s_feats, t_feats, connectors):
    """connectors[i]: None or the C_t x C_s map of feature i, applied as a
    1x1 convolution to the student's feature before its FSP matrices"""
    mapped = []
    for f, M in zip(s_feats, connectors):
        mapped.append(f if M is None else F.conv2d(f, M[:, :, None, None]))
    total = 0
    for gs, gt in zip(fsp_matrices(mapped), fsp_matrices(t_feats)):
        total = total + (gs - gt).pow(2).mean()
    return total


def vid_loss(s_blocks, t_blocks, layers, eps=1e-5):
    """layers[i] = (W1, W2, W3, log_scale)"""
    total = 0
    for s, t, (W1, W2, W3, log_scale) in zip(s_blocks, t_blocks, layers):
        s, t = match_resolution(s, t)
        h = F.relu(F.conv2d(s, W1[:, :, None, None]))
        h = F.relu(F.conv2d(h, W2[:, :, None, None]))
        mean = F.conv2d(h, W3[:, :, None, None])
        var = (torch.log(1 + torch.exp(log_scale)) + eps).view(1, -1, 1, 1)
        total = total + torch.mean(0.5 * ((mean - t) ** 2 / var + torch.log(var)))
    return total


def _named(prefix, tensors):
    return {"%s%d" % (prefix, i + 1): x for i, x in enumerate(tensors)}


def _blocks(c, shapes):
    return [c.randn(*sh) for sh in shapes]


def generate(outdir, Cases):
    c = Cases(2024)

    def add(op, opts, inputs, loss, leaves):
        loss.backward()
        # a leaf the loss does not read (SP's earlier blocks) has gradient 0
        grads = {k: torch.zeros_like(v) if v.grad is None else v.grad for k, v in leaves.items()}
        c.add(op, opts, inputs, {"loss": loss.reshape(1)}, grads)

    # SP: student and teacher blocks of other widths and resolutions
    s_shapes = [(5, 4, 8, 8), (5, 8, 4, 4)]
    t_shapes = [(5, 6, 8, 8), (5, 12, 2, 2)]
    for blocks in ("last", "all"):
        sb = [x.requires_grad_() for x in _blocks(c, s_shapes)]
        tb = _blocks(c, t_shapes)
        inputs = dict(_named("s", sb), **_named("t", tb))
        add("sp", {"blocks": blocks, "count": 2}, inputs, sp_loss(sb, tb, blocks), _named("s", sb))

    # PKT on pooled features of other widths
    for b, ds, dt, eps in ((6, 8, 12, 1e-7), (4, 5, 5, 1e-3)):
        s = c.randn(b, ds).requires_grad_()
        t = c.randn(b, dt)
        add("pkt", {"eps": eps}, {"s": s, "t": t}, pkt_loss(s, t, eps), {"s": s})

    # CC, the CRD code base's residual form with its two embeddings
    for b, ds, dt, k in ((6, 8, 12, 5), (3, 4, 4, 7)):
        s = c.randn(b, ds).requires_grad_()
        t = c.randn(b, dt)
        Ws, bs = [(c.randn(*sh) * 0.4).requires_grad_() for sh in ((k, ds), (k,))]
        Wt, bt = [(c.randn(*sh) * 0.4).requires_grad_() for sh in ((k, dt), (k,))]
        inputs = {"s": s, "t": t, "Ws": Ws, "bs": bs, "Wt": Wt, "bt": bt}
        add("cc", {"form": "residual", "feat_dim": k}, inputs, cc_residual_loss(s, t, Ws, bs, Wt, bt),
            {"s": s, "Ws": Ws, "bs": bs, "Wt": Wt, "bt": bt})
    # CC, the paper's Gaussian kernel in its Taylor series
    for gamma, order in ((0.4, 2), (0.7, 4)):
        s = c.randn(6, 8).requires_grad_()
        t = c.randn(6, 12)
        add("cc", {"form": "gaussian", "gamma": gamma, "order": order}, {"s": s, "t": t},
            cc_gaussian_loss(s, t, gamma, order), {"s": s})

    # NST: unequal widths; the student's second block finer than the teacher's
    s_shapes = [(3, 4, 8, 8), (3, 6, 4, 4)]
    t_shapes = [(3, 6, 8, 8), (3, 8, 2, 2)]
    for degree, cc in ((2, 0.0), (1, 0.0), (3, 0.5)):
        sb = [x.requires_grad_() for x in _blocks(c, s_shapes)]
        tb = _blocks(c, t_shapes)
        inputs = dict(_named("s", sb), **_named("t", tb))
        add("nst", {"degree": degree, "c": cc, "count": 2}, inputs, nst_loss(sb, tb, degree, cc),
            _named("s", sb))

    # FSP over [stem, block 1, block 2]: equal widths (no connectors), then
    # other widths at some features (learnt channel maps there)
    fsp_cases = (
        ([(2, 4, 8, 8), (2, 4, 8, 8), (2, 8, 4, 4)], [(2, 4, 8, 8), (2, 4, 4, 4), (2, 8, 4, 4)]),
        ([(2, 3, 8, 8), (2, 4, 8, 8), (2, 6, 4, 4)], [(2, 5, 8, 8), (2, 4, 8, 8), (2, 7, 2, 2)]),
    )
    for s_shapes, t_shapes in fsp_cases:
        sf = [x.requires_grad_() for x in _blocks(c, s_shapes)]
        tf = _blocks(c, t_shapes)
        connectors, leaves = [], _named("s", sf)
        inputs = dict(_named("s", sf), **_named("t", tf))
        for i, (ss, ts) in enumerate(zip(s_shapes, t_shapes)):
            if ss[1] == ts[1]:
                connectors.append(None)
            else:
                M = (c.randn(ts[1], ss[1]) / math.sqrt(ss[1])).requires_grad_()
                connectors.append(M)
                inputs["M%d" % (i + 1)] = leaves["M%d" % (i + 1)] = M
        add("fsp", {"count": len(sf)}, inputs, fsp_loss(sf, tf, connectors), leaves)

    # VID: the student's blocks against finer and coarser teacher blocks
    s_shapes = [(2, 4, 8, 8), (2, 6, 4, 4)]
    t_shapes = [(2, 6, 8, 8), (2, 5, 8, 8)]
    for eps, mid in ((1e-5, None), (0.1, 3)):
        sb = [x.requires_grad_() for x in _blocks(c, s_shapes)]
        tb = _blocks(c, t_shapes)
        inputs = dict(_named("s", sb), **_named("t", tb))
        leaves = _named("s", sb)
        layers = []
        for i, (ss, ts) in enumerate(zip(s_shapes, t_shapes)):
            m = mid or ts[1]
            params = [c.randn(m, ss[1]) * 0.5, c.randn(m, m) * 0.5, c.randn(ts[1], m) * 0.5,
                      c.randn(ts[1]) * 0.5 + math.log(math.exp(2.0) - 1)]
            params = [p.requires_grad_() for p in params]
            for name, p in zip(("W1", "W2", "W3", "log_scale"), params):
                inputs["%s_%d" % (name, i + 1)] = leaves["%s_%d" % (name, i + 1)] = p
            layers.append(params)
        add("vid", {"eps": eps, "mid_channels": mid or False, "count": 2}, inputs,
            vid_loss(sb, tb, layers, eps), leaves)

    c.save(os.path.join(outdir, "zoo.safetensors"))
