"""PyTorch reference definitions of the 25 zoo architectures.

Written for the parity specs from the published descriptions (the CRD code
base's CIFAR models as summarised in shared/reference/model_facts.md,
torchvision's ImageNet ResNets, the DKD code base's ImageNet MobileNetV1).
Parameter names are PyTorch's dotted names, which our Lua zoo uses too.

Every model's forward is forward(x, is_feat=False, preact=False): logits, or
(list of features, logits) with is_feat, the last feature being the pooled
penultimate vector.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _conv(i, o, k, s=1, groups=1, bias=False):
    return nn.Conv2d(i, o, k, stride=s, padding=k // 2, groups=groups, bias=bias)


def _init_kaiming(model):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _init_normal(model, linear_normal):
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            m.weight.data.normal_(0, math.sqrt(2.0 / n))
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data.fill_(1)
            m.bias.data.zero_()
        elif isinstance(m, nn.Linear):
            if linear_normal:
                m.weight.data.normal_(0, 0.01)
            m.bias.data.zero_()


def _run(stage, x):
    """Runs blocks returning (out, preact); gives the last pair."""
    pre = None
    for block in stage:
        x, pre = block(x)
    return x, pre


# --------------------------------------------------------------- CIFAR ResNet

class CifarBasic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = _conv(cin, cout, 3, stride)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(cout, cout, 3)
        self.bn2 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        else:
            self.downsample = None

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        s = self.downsample(x) if self.downsample is not None else x
        pre = h + s
        return F.relu(pre), pre


class CifarResNet(nn.Module):
    def __init__(self, depth, widths, num_classes=100):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = _conv(3, widths[0], 3)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (w, s) in enumerate(zip(widths[1:], (1, 2, 2))):
            blocks = []
            for j in range(n):
                blocks.append(CifarBasic(cin, w, s if j == 0 else 1))
                cin = w
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(widths[3], num_classes)
        _init_kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run(self.layer1, f0)
        f2, p2 = _run(self.layer2, f1)
        f3, p3 = _run(self.layer3, f2)
        f4 = F.avg_pool2d(f3, 8).flatten(1)
        z = self.fc(f4)
        if not is_feat:
            return z
        return ([f0, p1, p2, p3, f4] if preact else [f0, f1, f2, f3, f4]), z


# ------------------------------------------------------- ResNet50 (CIFAR, v2)

class V2Bottleneck(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, cout, 1)
        self.bn3 = nn.BatchNorm2d(cout)
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        pre = h + self.shortcut(x)
        return F.relu(pre), pre


class CifarResNet50(nn.Module):
    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = _conv(3, 64, 3)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, count, stride) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3), (1, 2, 2, 2))):
            blocks = []
            for j in range(count):
                blocks.append(V2Bottleneck(cin, planes, stride if j == 0 else 1))
                cin = planes * 4
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(2048, num_classes)
        _init_kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run(self.layer1, f0)
        f2, p2 = _run(self.layer2, f1)
        f3, p3 = _run(self.layer3, f2)
        f4, p4 = _run(self.layer4, f3)
        f5 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        z = self.linear(f5)
        if not is_feat:
            return z
        return ([f0, p1, p2, p3, p4, f5] if preact else [f0, f1, f2, f3, f4, f5]), z


# ------------------------------------------------------------------ WideResNet

class WrnBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = _conv(cin, cout, 3, stride)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = _conv(cout, cout, 3)
        self.equal = cin == cout
        if not self.equal:
            self.convShortcut = _conv(cin, cout, 1, stride)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        h = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return (x if self.equal else self.convShortcut(a)) + h


class WrnGroup(nn.Module):
    def __init__(self, n, cin, cout, stride):
        super().__init__()
        self.layer = nn.Sequential(*[WrnBlock(cin if i == 0 else cout, cout, stride if i == 0 else 1)
                                     for i in range(n)])

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, k, num_classes=100):
        super().__init__()
        n = (depth - 4) // 6
        ch = [16, 16 * k, 32 * k, 64 * k]
        self.conv1 = _conv(3, 16, 3)
        self.block1 = WrnGroup(n, ch[0], ch[1], 1)
        self.block2 = WrnGroup(n, ch[1], ch[2], 2)
        self.block3 = WrnGroup(n, ch[2], ch[3], 2)
        self.bn1 = nn.BatchNorm2d(ch[3])
        self.fc = nn.Linear(ch[3], num_classes)
        _init_normal(self, linear_normal=False)

    def forward(self, x, is_feat=False, preact=False):
        f0 = self.conv1(x)
        f1 = self.block1(f0)
        f2 = self.block2(f1)
        f3 = self.block3(f2)
        f4 = F.avg_pool2d(F.relu(self.bn1(f3)), 8).flatten(1)
        z = self.fc(f4)
        if not is_feat:
            return z
        if preact:
            return [f0, self.block2.layer[0].bn1(f1), self.block3.layer[0].bn1(f2), self.bn1(f3), f4], z
        return [f0, f1, f2, f3, f4], z


# ------------------------------------------------------------------------ VGG

VGG_CFG = {
    "vgg8": [[64], [128], [256], [512], [512]],
    "vgg11": [[64], [128], [256, 256], [512, 512], [512, 512]],
    "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]],
    "vgg16": [[64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3],
    "vgg19": [[64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4],
}


class VGG(nn.Module):
    def __init__(self, cfg, num_classes=100):
        super().__init__()
        cin = 3
        for i, widths in enumerate(cfg):
            layers = []
            for w in widths:
                layers += [_conv(cin, w, 3, bias=True), nn.BatchNorm2d(w), nn.ReLU()]
                cin = w
            setattr(self, "block%d" % i, nn.Sequential(*layers[:-1]))   # ends with BN
        self.classifier = nn.Linear(512, num_classes)
        _init_normal(self, linear_normal=True)

    def forward(self, x, is_feat=False, preact=False):
        h = x.shape[2]
        f0 = F.relu(self.block0(x))
        p1 = self.block1(F.max_pool2d(f0, 2, 2))
        f1 = F.relu(p1)
        p2 = self.block2(F.max_pool2d(f1, 2, 2))
        f2 = F.relu(p2)
        p3 = self.block3(F.max_pool2d(f2, 2, 2))
        f3 = F.relu(p3)
        x4 = F.max_pool2d(f3, 2, 2) if h == 64 else f3
        p4 = self.block4(x4)
        f4 = F.relu(p4)
        f5 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        z = self.classifier(f5)
        if not is_feat:
            return z
        return ([f0, p1, p2, p3, p4, f5] if preact else [f0, f1, f2, f3, f4, f5]), z


# ------------------------------------------------------- MobileNetV2 (half)

def _conv_bn_relu(cin, cout, k, s=1):
    return nn.Sequential(_conv(cin, cout, k, s), nn.BatchNorm2d(cout), nn.ReLU())


class InvRes(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hid = cin * t
        self.use_res = stride == 1 and cin == cout
        self.conv = nn.Sequential(
            _conv(cin, hid, 1), nn.BatchNorm2d(hid), nn.ReLU(),
            _conv(hid, hid, 3, stride, groups=hid), nn.BatchNorm2d(hid), nn.ReLU(),
            _conv(hid, cout, 1), nn.BatchNorm2d(cout))

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Half(nn.Module):
    def __init__(self, num_classes=100, t=6, width=0.5):
        super().__init__()
        settings = [(1, 16, 1, 1), (t, 24, 2, 1), (t, 32, 3, 2), (t, 64, 4, 2),
                    (t, 96, 3, 1), (t, 160, 3, 2), (t, 320, 1, 1)]
        cin = int(32 * width)
        self.conv1 = _conv_bn_relu(3, cin, 3, 2)
        blocks = []
        for tt, c, n, s in settings:
            cout = int(c * width)
            layer = []
            for i in range(n):
                layer.append(InvRes(cin, cout, s if i == 0 else 1, tt))
                cin = cout
            blocks.append(nn.Sequential(*layer))
        self.blocks = nn.ModuleList(blocks)
        self.conv2 = _conv_bn_relu(cin, 1280, 1)
        self.classifier = nn.Sequential(nn.Linear(1280, num_classes))
        _init_normal(self, linear_normal=True)

    def forward(self, x, is_feat=False, preact=False):
        b = self.blocks
        f0 = self.conv1(x)
        f1 = b[1](b[0](f0))
        f2 = b[2](f1)
        f3 = b[4](b[3](f2))
        f4 = b[6](b[5](f3))
        h = self.conv2(f4)
        f5 = F.avg_pool2d(h, x.shape[2] // 16, ceil_mode=True).flatten(1)
        z = self.classifier(f5)
        if not is_feat:
            return z
        return [f0, f1, f2, f3, f4, f5], z


# ------------------------------------------------------------- ShuffleNetV1

def _shuffle(x, g):
    n, c, h, w = x.shape
    return x.view(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)


class SV1Block(nn.Module):
    def __init__(self, cin, cout, stride, groups):
        super().__init__()
        mid = cout // 4
        g = 1 if cin == 24 else groups
        self.g = g
        self.stride = stride
        self.conv1 = _conv(cin, mid, 1, groups=g)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = _conv(mid, mid, 3, stride, groups=mid)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv(mid, cout, 1, groups=groups)
        self.bn3 = nn.BatchNorm2d(cout)

    def forward(self, x):
        h = _shuffle(F.relu(self.bn1(self.conv1(x))), self.g)
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        if self.stride == 2:
            pre = torch.cat([h, F.avg_pool2d(x, 3, 2, 1)], 1)
        else:
            pre = h + x
        return F.relu(pre), pre


class ShuffleV1(nn.Module):
    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = _conv(3, 24, 1)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip((240, 480, 960), (4, 8, 4))):
            blocks = []
            for j in range(n):
                blocks.append(SV1Block(cin, cout - cin if j == 0 else cout, 2 if j == 0 else 1, 3))
                cin = cout
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(960, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run(self.layer1, f0)
        f2, p2 = _run(self.layer2, f1)
        f3, p3 = _run(self.layer3, f2)
        f4 = F.avg_pool2d(f3, 4).flatten(1)
        z = self.linear(f4)
        if not is_feat:
            return z
        return ([f0, p1, p2, p3, f4] if preact else [f0, f1, f2, f3, f4]), z


# ------------------------------------------------------------- ShuffleNetV2

class SV2Basic(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c // 2
        self.conv1 = _conv(h, h, 1)
        self.bn1 = nn.BatchNorm2d(h)
        self.conv2 = _conv(h, h, 3, groups=h)
        self.bn2 = nn.BatchNorm2d(h)
        self.conv3 = _conv(h, h, 1)
        self.bn3 = nn.BatchNorm2d(h)

    def forward(self, x):
        h = x.shape[1] // 2
        x1, x2 = x[:, :h], x[:, h:]
        b = F.relu(self.bn1(self.conv1(x2)))
        b = self.bn2(self.conv2(b))
        b = self.bn3(self.conv3(b))
        return _shuffle(torch.cat([x1, F.relu(b)], 1), 2), torch.cat([x1, b], 1)


class SV2Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        mid = cout // 2
        self.conv1 = _conv(cin, cin, 3, 2, groups=cin)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv2 = _conv(cin, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv3 = _conv(cin, mid, 1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv4 = _conv(mid, mid, 3, 2, groups=mid)
        self.bn4 = nn.BatchNorm2d(mid)
        self.conv5 = _conv(mid, mid, 1)
        self.bn5 = nn.BatchNorm2d(mid)

    def forward(self, x):
        left = F.relu(self.bn2(self.conv2(self.bn1(self.conv1(x)))))
        right = F.relu(self.bn3(self.conv3(x)))
        right = F.relu(self.bn5(self.conv5(self.bn4(self.conv4(right)))))
        out = _shuffle(torch.cat([left, right], 1), 2)
        return out, out


class ShuffleV2(nn.Module):
    def __init__(self, num_classes=100):
        super().__init__()
        self.conv1 = _conv(3, 24, 1)
        self.bn1 = nn.BatchNorm2d(24)
        cin = 24
        for i, (cout, n) in enumerate(zip((116, 232, 464), (3, 7, 3))):
            blocks = [SV2Down(cin, cout)] + [SV2Basic(cout) for _ in range(n)]
            cin = cout
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.conv2 = _conv(464, 1024, 1)
        self.bn2 = nn.BatchNorm2d(1024)
        self.linear = nn.Linear(1024, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        f0 = F.relu(self.bn1(self.conv1(x)))
        f1, p1 = _run(self.layer1, f0)
        f2, p2 = _run(self.layer2, f1)
        f3, p3 = _run(self.layer3, f2)
        f4 = F.avg_pool2d(F.relu(self.bn2(self.conv2(f3))), 4).flatten(1)
        z = self.linear(f4)
        if not is_feat:
            return z
        return ([f0, p1, p2, p3, f4] if preact else [f0, f1, f2, f3, f4]), z


# ------------------------------------------------ ImageNet ResNet (torchvision)

class TvBasic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = _conv(cin, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=False)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = down

    def forward(self, x):
        h = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        pre = h + (self.downsample(x) if self.downsample is not None else x)
        return F.relu(pre), pre


class TvBottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride, down):
        super().__init__()
        self.conv1 = _conv(cin, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)   # v1.5: stride on the 3x3
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * 4, 1)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = down

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        pre = h + (self.downsample(x) if self.downsample is not None else x)
        return F.relu(pre), pre


class ImageNetResNet(nn.Module):
    def __init__(self, block, counts, num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=False)
        cin = 64
        for i, (planes, n, stride) in enumerate(zip((64, 128, 256, 512), counts, (1, 2, 2, 2))):
            cout = planes * block.expansion
            down = None
            if stride != 1 or cin != cout:
                down = nn.Sequential(_conv(cin, cout, 1, stride), nn.BatchNorm2d(cout))
            blocks = [block(cin, planes, stride, down)]
            cin = cout
            blocks += [block(cin, planes, 1, None) for _ in range(n - 1)]
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        _init_kaiming(self)

    def forward(self, x, is_feat=False, preact=False):
        stem = self.bn1(self.conv1(x))
        f0 = F.relu(stem)
        f1, p1 = _run(self.layer1, F.max_pool2d(f0, 3, 2, 1))
        f2, p2 = _run(self.layer2, f1)
        f3, p3 = _run(self.layer3, f2)
        f4, p4 = _run(self.layer4, f3)
        f5 = F.adaptive_avg_pool2d(f4, 1).flatten(1)
        z = self.fc(f5)
        if not is_feat:
            return z
        return ([stem, p1, p2, p3, p4, f5] if preact else [f0, f1, f2, f3, f4, f5]), z


# ------------------------------------------------------ MobileNetV1 (ImageNet)

class MobileNetV1(nn.Module):
    UNITS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1),
             (256, 512, 2)] + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    TAPS = {3: 0, 5: 1, 11: 2, 13: 3}   # 0-based unit index -> feature index

    def __init__(self, num_classes=1000):
        super().__init__()
        units = [_conv_bn_relu(3, 32, 3, 2)]
        for cin, cout, s in self.UNITS:
            units.append(nn.Sequential(
                _conv(cin, cin, 3, s, groups=cin), nn.BatchNorm2d(cin), nn.ReLU(),
                _conv(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU()))
        units.append(nn.AdaptiveAvgPool2d(1))
        self.model = nn.Sequential(*units)
        self.fc = nn.Linear(1024, num_classes)

    def forward(self, x, is_feat=False, preact=False):
        feats, pres = [None] * 4, [None] * 4
        for i in range(14):
            unit = self.model[i]
            if i in self.TAPS:
                for m in list(unit)[:-1]:
                    x = m(x)
                pres[self.TAPS[i]] = x
                x = F.relu(x)
                feats[self.TAPS[i]] = x
            else:
                x = unit(x)
        pooled = self.model[14](x).flatten(1)
        z = self.fc(pooled)
        if not is_feat:
            return z
        return (pres if preact else feats) + [pooled], z


# ------------------------------------------------------------------- registry

def _cifar_resnet(depth, widths):
    return lambda num_classes=100: CifarResNet(depth, widths, num_classes)


def _wrn(depth, k):
    return lambda num_classes=100: WideResNet(depth, k, num_classes)


def _vgg(name):
    return lambda num_classes=100: VGG(VGG_CFG[name], num_classes)


MODELS = {}
for _d in (8, 14, 20, 32, 44, 56, 110):
    MODELS["resnet%d" % _d] = _cifar_resnet(_d, [16, 16, 32, 64])
MODELS["resnet8x4"] = _cifar_resnet(8, [32, 64, 128, 256])
MODELS["resnet32x4"] = _cifar_resnet(32, [32, 64, 128, 256])
for _d, _k in ((16, 1), (16, 2), (40, 1), (40, 2)):
    MODELS["wrn_%d_%d" % (_d, _k)] = _wrn(_d, _k)
for _n in VGG_CFG:
    MODELS[_n] = _vgg(_n)
MODELS["MobileNetV2"] = MobileNetV2Half
MODELS["ShuffleV1"] = ShuffleV1
MODELS["ShuffleV2"] = ShuffleV2
MODELS["ResNet50"] = CifarResNet50
MODELS["resnet18"] = lambda num_classes=1000: ImageNetResNet(TvBasic, (2, 2, 2, 2), num_classes)
MODELS["resnet34"] = lambda num_classes=1000: ImageNetResNet(TvBasic, (3, 4, 6, 3), num_classes)
MODELS["resnet50"] = lambda num_classes=1000: ImageNetResNet(TvBottleneck, (3, 4, 6, 3), num_classes)
MODELS["mobilenetv1"] = MobileNetV1

IMAGENET = {"resnet18", "resnet34", "resnet50", "mobilenetv1"}


def create(name, num_classes=None):
    if name not in MODELS:
        raise KeyError("oracle: unknown model %r (known: %s)" % (name, ", ".join(sorted(MODELS))))
    if num_classes is None:
        num_classes = 1000 if name in IMAGENET else 100
    return MODELS[name](num_classes=num_classes)


def torchvision_check(name, model):
    """For the ImageNet ResNets: when torchvision is importable, checks that
    torchvision's model has the same state_dict names and shapes and gives
    the same logits with our weights. Returns a message, or None when
    torchvision is unavailable or the model is not one of them."""
    if name not in ("resnet18", "resnet34", "resnet50"):
        return None
    try:
        import torchvision
    except Exception:
        return None
    tv = getattr(torchvision.models, name)(num_classes=model.fc.out_features)
    ours = {k: v.shape for k, v in model.state_dict().items()}
    theirs = {k: v.shape for k, v in tv.state_dict().items()}
    if ours != theirs:
        diff = sorted(set(ours) ^ set(theirs))
        raise AssertionError("oracle %s: state_dict differs from torchvision's: %s" % (name, diff[:10]))
    tv.load_state_dict(model.state_dict())
    tv = tv.to(next(model.parameters()).dtype).eval()
    was = model.training
    model.eval()
    with torch.no_grad():
        x = torch.randn(2, 3, 64, 64, dtype=next(model.parameters()).dtype)
        err = (tv(x) - model(x)).abs().max().item()
    model.train(was)
    if err > 1e-5:
        raise AssertionError("oracle %s: logits differ from torchvision's by %g" % (name, err))
    return "torchvision %s agrees (max |diff| %.2g)" % (name, err)
