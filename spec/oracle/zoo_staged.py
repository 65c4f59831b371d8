"""PyTorch definitions of issue 18's AB, FT and ReviewKD, for
spec/parity_zoo_staged_spec.lua (oracle.py's `zoo_staged` subcommand):

    /usr/bin/python3 spec/oracle/oracle.py zoo_staged OUTDIR     -> zoo_staged.safetensors

AB and FT follow the CRD code base (HobbitLong/RepDistiller: ABLoss with
its masked alternative L2, ConvReg connectors without ReLU; Paraphraser,
Translator, FactorTransfer), ReviewKD follows mdistiller (ABF modules,
hcl_loss, the warm-up factor), written here from their definitions. Every
module runs in float64 with float32-exact weights and inputs, in training
mode (batch statistics) except FT's paraphraser in its main loss, which
the reference keeps in eval mode and out of the optimizer.

Per case: inputs "s<i>" (student features, leaves), "t<i>" (teacher
features), "w.<name>" (every float entry of the distiller's state dict,
named as the Lua distiller names it); output "loss"; gradients "s<i>" and
"w.<name>" of the trainable parameters.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from oracle import Cases, D, f32, leaf

# ---------------------------------------------------------------------- AB


def conv_reg(s_shape, t_shape):
    """The CRD code base's ConvReg conv choice; BN after it, no ReLU."""
    s_c, s_h, s_w = s_shape[1:]
    t_c, t_h, t_w = t_shape[1:]
    if s_h == 2 * t_h:
        conv = nn.Conv2d(s_c, t_c, 3, stride=2, padding=1)
    elif s_h * 2 == t_h:
        conv = nn.ConvTranspose2d(s_c, t_c, 4, stride=2, padding=1)
    else:
        conv = nn.Conv2d(s_c, t_c, (1 + s_h - t_h, 1 + s_w - t_w))
    return nn.Sequential(conv, nn.BatchNorm2d(t_c))


class ABConnectors(nn.Module):
    def __init__(self, s_shapes, t_shapes):
        super().__init__()
        self.connectors = nn.ModuleList(
            nn.Identity() if tuple(s[1:]) == tuple(t[1:]) else conv_reg(s, t)
            for s, t in zip(s_shapes, t_shapes))


def ab_alternative_l2(source, target, margin):
    loss = ((source + margin) ** 2 * ((source > -margin) & (target <= 0)).to(source.dtype)
            + (source - margin) ** 2 * ((source <= margin) & (target > 0)).to(source.dtype))
    return loss.abs().sum()


def ab_loss(g_s, g_t, margin):
    n = len(g_s)
    bsz = g_s[0].shape[0]
    total = 0
    for i, (s, t) in enumerate(zip(g_s, g_t)):
        total = total + 2 ** (i - n + 1) * ab_alternative_l2(s, t, margin) / bsz / 1000 * 3
    return total


# ---------------------------------------------------------------------- FT


def ft_stack(conv, channels, use_bn):
    layers = []
    for i in range(3):
        layers += [conv(channels[i], channels[i + 1], 3, 1, 1),
                   nn.BatchNorm2d(channels[i + 1]) if use_bn else nn.Identity(),
                   nn.LeakyReLU(0.1)]
    return nn.Sequential(*layers)


class FTModules(nn.Module):
    def __init__(self, s_channels, t_channels, rate=0.5):
        super().__init__()
        k = int(t_channels * rate)
        self.paraphraser = nn.Module()
        self.paraphraser.encoder = ft_stack(nn.Conv2d, [t_channels, t_channels, k, k], False)
        self.paraphraser.decoder = ft_stack(nn.ConvTranspose2d, [k, k, t_channels, t_channels], False)
        self.translator = ft_stack(nn.Conv2d, [s_channels, s_channels, k, k], True)


def ft_factor(f, p1):
    return F.normalize(f.pow(p1).mean(1).view(f.size(0), -1))


def ft_loss(factor_s, factor_t, p1=2, p2=1):
    s_h, t_h = factor_s.shape[2], factor_t.shape[2]
    if s_h > t_h:
        factor_s = F.adaptive_avg_pool2d(factor_s, (t_h, t_h))
    elif s_h < t_h:
        factor_t = F.adaptive_avg_pool2d(factor_t, (s_h, s_h))
    diff = ft_factor(factor_s, p1) - ft_factor(factor_t, p1)
    return diff.abs().mean() if p2 == 1 else diff.pow(p2).mean()


# ---------------------------------------------------------------- ReviewKD


class ABF(nn.Module):
    def __init__(self, in_channel, mid_channel, out_channel, fuse):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_channel, mid_channel, 1, bias=False),
                                   nn.BatchNorm2d(mid_channel))
        self.conv2 = nn.Sequential(nn.Conv2d(mid_channel, out_channel, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(out_channel))
        self.att_conv = nn.Sequential(nn.Conv2d(mid_channel * 2, 2, 1), nn.Sigmoid()) if fuse else None

    def forward(self, x, y, out_size):
        n, _, h, w = x.shape
        x = self.conv1(x)
        if self.att_conv is not None:
            y = F.interpolate(y, (h, w), mode="nearest")
            z = self.att_conv(torch.cat([x, y], dim=1))
            x = x * z[:, 0].view(n, 1, h, w) + y * z[:, 1].view(n, 1, h, w)
        if tuple(x.shape[2:]) != tuple(out_size):
            x = F.interpolate(x, out_size, mode="nearest")
        return self.conv2(x), x


class ReviewModules(nn.Module):
    def __init__(self, s_shapes, t_shapes, max_mid=512):
        super().__init__()
        mid = min(max_mid, s_shapes[-1][1])
        n = len(s_shapes)
        abfs = [ABF(s[1], mid, t[1], i < n - 1) for i, (s, t) in enumerate(zip(s_shapes, t_shapes))]
        self.abfs = nn.ModuleList(abfs[::-1])
        self.out_sizes = [tuple(t[2:]) for t in t_shapes][::-1]

    def forward(self, s_feats):
        x = s_feats[::-1]
        results = []
        out, res = self.abfs[0](x[0], None, self.out_sizes[0])
        results.append(out)
        for feat, abf, size in zip(x[1:], self.abfs[1:], self.out_sizes[1:]):
            out, res = abf(feat, res, size)
            results.insert(0, out)
        return results


def hcl_loss(fstudent, fteacher):
    total = 0.0
    for fs, ft in zip(fstudent, fteacher):
        h = fs.shape[2]
        loss = F.mse_loss(fs, ft)
        cnt, tot = 1.0, 1.0
        for size in (4, 2, 1):
            if size >= h:
                continue
            cnt /= 2.0
            loss = loss + F.mse_loss(F.adaptive_avg_pool2d(fs, (size, size)),
                                     F.adaptive_avg_pool2d(ft, (size, size))) * cnt
            tot += cnt
        total = total + loss / tot
    return total


# ------------------------------------------------------------------ cases


def prepared(module, g):
    """float64 with float32-exact entries; BN affine parameters perturbed."""
    module = module.to(D)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g, dtype=D))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g, dtype=D))
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(f32(t))
    return module


def weights(module):
    return {"w." + k: v.detach().clone() for k, v in module.state_dict().items() if v.is_floating_point()}


def record(c, op, opts, module, s_leaves, teacher, loss, trainable):
    """Backward, then the case: inputs, the loss and the gradients."""
    ins = {"s%d" % (i + 1): s for i, s in enumerate(s_leaves)}
    ins.update({"t%d" % (i + 1): t for i, t in enumerate(teacher)})
    ins.update(module_weights[id(module)])
    loss.backward()
    grads = {"s%d" % (i + 1): s.grad for i, s in enumerate(s_leaves) if s.grad is not None}
    for name, p in trainable.named_parameters(prefix=trainable_prefix.get(id(trainable), "")):
        if p.grad is not None:
            grads["w." + name] = p.grad
    c.add(op, opts, ins, {"loss": loss.reshape(1)}, grads)


module_weights = {}
trainable_prefix = {}


def build(module, g):
    module = prepared(module, g)
    module_weights[id(module)] = weights(module)   # before any forward moves the BN statistics
    module.train()
    return module


def gen_ab(c, g):
    layouts = [
        # identity, 1x1 conv, stride-2 conv
        ([(3, 4, 8, 8), (3, 4, 8, 8), (3, 6, 8, 8)], [(3, 4, 8, 8), (3, 6, 8, 8), (3, 8, 4, 4)], 1.0),
        # transposed conv, (1 + Hs - Ht) conv
        ([(3, 4, 4, 4), (3, 5, 6, 6)], [(3, 6, 8, 8), (3, 6, 4, 4)], 0.5),
    ]
    for s_shapes, t_shapes, margin in layouts:
        module = build(ABConnectors(s_shapes, t_shapes), g)
        s_leaves = [c.randn(*s).requires_grad_() for s in s_shapes]
        teacher = [c.randn(*t) for t in t_shapes]
        g_s = [conn(s) for conn, s in zip(module.connectors, s_leaves)]
        loss = ab_loss(g_s, teacher, margin)
        record(c, "ab", {"margin": margin, "blocks": len(s_shapes)}, module, s_leaves, teacher, loss, module)


def gen_ft(c, g):
    # (student last block, teacher last block, p2)
    for s_shape, t_shape, p2 in (((3, 6, 4, 4), (3, 8, 4, 4), 1), ((3, 6, 8, 8), (3, 8, 4, 4), 1),
                                 ((3, 6, 4, 4), (3, 8, 8, 8), 2)):
        module = build(FTModules(s_shape[1], t_shape[1]), g)
        s = c.randn(*s_shape).requires_grad_()
        t = c.randn(*t_shape)
        # the main loss: translator in training mode, frozen paraphraser in eval mode
        module.paraphraser.eval()
        with torch.no_grad():
            factor_t = module.paraphraser.encoder(t)
        loss = ft_loss(module.translator(s), factor_t, p2=p2)
        trainable_prefix[id(module.translator)] = "translator"
        record(c, "ft", {"stage": False, "p2": p2}, module, [s], [t], loss, module.translator)
    # the pre-training stage: the paraphraser reconstructs the teacher's feature
    module = build(FTModules(6, 8), g)
    t = c.randn(3, 8, 4, 4)
    rec = module.paraphraser.decoder(module.paraphraser.encoder(t))
    loss = F.mse_loss(rec, t)
    trainable_prefix[id(module.paraphraser)] = "paraphraser"
    record(c, "ft", {"stage": True, "p2": 1}, module, [c.randn(3, 6, 4, 4).requires_grad_()], [t], loss,
           module.paraphraser)


def gen_reviewkd(c, g):
    # student block features + pooled, teacher's; the second at other resolutions
    layouts = [
        ([(3, 4, 8, 8), (3, 8, 4, 4), (3, 8, 2, 2)], [(3, 6, 8, 8), (3, 8, 4, 4), (3, 12, 2, 2)], 10),
        ([(3, 4, 8, 8), (3, 6, 4, 4), (3, 6, 2, 2)], [(3, 5, 16, 16), (3, 8, 8, 8), (3, 7, 4, 4)], 25),
    ]
    warmup = 20
    for s_blocks, t_blocks, epoch in layouts:
        s_shapes = s_blocks + [(s_blocks[-1][0], s_blocks[-1][1], 1, 1)]
        t_shapes = t_blocks + [(t_blocks[-1][0], t_blocks[-1][1], 1, 1)]
        module = build(ReviewModules(s_shapes, t_shapes), g)
        s_leaves = [c.randn(*s).requires_grad_() for s in s_blocks]
        s_pooled = c.randn(s_shapes[-1][0], s_shapes[-1][1]).requires_grad_()
        teacher = [c.randn(*t) for t in t_blocks]
        t_pooled = c.randn(t_shapes[-1][0], t_shapes[-1][1])
        results = module([*s_leaves, s_pooled.view(*s_shapes[-1])])
        targets = teacher + [t_pooled.view(*t_shapes[-1])]
        loss = min(epoch / warmup, 1.0) * hcl_loss(results, targets)
        record(c, "reviewkd", {"warmup": warmup, "epoch": epoch, "blocks": len(s_blocks)}, module,
               s_leaves + [s_pooled], teacher + [t_pooled], loss, module)


def generate(outdir):
    c = Cases(1818)
    g = torch.Generator().manual_seed(18)
    torch.manual_seed(18)       # module initialisation
    gen_ab(c, g)
    gen_ft(c, g)
    gen_reviewkd(c, g)
    c.save(os.path.join(outdir, "zoo_staged.safetensors"))
