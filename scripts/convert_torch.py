#!/usr/bin/python3
"""Converts a PyTorch checkpoint into a safetensors file distill loads.

    /usr/bin/python3 scripts/convert_torch.py IN.pth OUT.safetensors [--arch NAME]
        [--num-classes N] [--prefix P] [--keep-dtype]

IN.pth may be a plain state dict or a wrapper dict as the CRD and DKD code
bases save it ({'model': state_dict, 'epoch': ..., ...}; also 'state_dict',
'net', 'student'). A DataParallel 'module.' prefix is stripped; --prefix P
keeps only the entries under P (e.g. 'student.' for a distiller's state) and
strips it. Floating tensors are written as float32 (our engine's dtype;
--keep-dtype keeps them), integer tensors (num_batches_tracked) as int64.
Parameter names are PyTorch's dotted names, which our zoo uses too:

    local model = require("distill.models").create("resnet32x4")
    model:load_state_dict(require("distill.checkpoint").load_tensors("OUT.safetensors"))

With --arch NAME the names and shapes are checked against our Lua zoo's
model NAME (listed by running lua5.4 with this checkout's lua/ and build/):
missing, unexpected and mis-shaped entries are reported and the conversion
fails, except that missing num_batches_tracked buffers (checkpoints of
PyTorch < 0.4.1) are added as 0. Runs with Debian's python3-torch; the
safetensors package is not needed.
"""
import argparse
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "spec", "oracle"))
import st  # noqa: E402

WRAPPER_KEYS = ("model", "state_dict", "net", "student", "model_state_dict")
CLASSIFIERS = ("fc.weight", "linear.weight", "classifier.weight", "classifier.0.weight")

LUA_KEYS = r"""
local name, classes = arg[1], math.tointeger(tonumber(arg[2]))
local models = require "distill.models"
local opts = classes and { num_classes = classes } or nil
local model = models.create(name, opts)
local state = model:state_dict()
for _, key in ipairs(model:state_dict_keys()) do
  local t = state[key]
  io.write(key, "\t", t:dtype(), "\t", table.concat(t:shape(), ","), "\n")
end
"""


def fail(msg):
    sys.stderr.write("convert_torch: " + msg + "\n")
    sys.exit(1)


def extract_state_dict(obj, prefix=None):
    """The flat {name: tensor} of a checkpoint object."""
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        fail("expected a state dict or a dict holding one, got %s" % type(obj).__name__)
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors or len(tensors) < len(obj) // 2:
        for key in WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, (dict, torch.nn.Module)):
                return extract_state_dict(inner, prefix)
        fail("no state dict found (top-level keys: %s; expected tensors or one of %s)"
             % (", ".join(map(str, list(obj)[:20])), ", ".join(WRAPPER_KEYS)))
    if len(tensors) != len(obj):
        skipped = [k for k in obj if k not in tensors]
        sys.stderr.write("convert_torch: ignoring %d non-tensor entries: %s\n"
                         % (len(skipped), ", ".join(map(str, skipped[:10]))))
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    if prefix:
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        if not tensors:
            fail("no entries under the prefix %r" % prefix)
    return tensors


def zoo_keys(arch, num_classes):
    """[(name, dtype, shape)] of our Lua model `arch`, in state_dict order."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA_KEYS)
        script = f.name
    try:
        cmd = [os.environ.get("DISTILL_LUA", "lua5.4"), os.path.join(HERE, "distill"), script, arch]
        if num_classes:
            cmd.append(str(num_classes))
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    finally:
        os.unlink(script)
    if res.returncode != 0:
        fail("cannot list the parameters of '%s' with our zoo:\n%s" % (arch, (res.stderr or res.stdout).strip()))
    out = []
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        shape = [int(s) for s in parts[2].split(",") if s]
        out.append((parts[0], parts[1], shape))
    if not out:
        fail("our zoo returned no parameters for '%s'" % arch)
    return out


def check_against_zoo(tensors, arch, num_classes):
    if num_classes is None:
        for key in CLASSIFIERS:
            if key in tensors and tensors[key].dim() == 2:
                num_classes = int(tensors[key].shape[0])
                break
    expected = zoo_keys(arch, num_classes)
    names = {n for n, _, _ in expected}
    missing, mismatched = [], []
    for name, dtype, shape in expected:
        if name not in tensors:
            if name.endswith("num_batches_tracked"):
                tensors[name] = torch.zeros((), dtype=torch.int64)
                sys.stderr.write("convert_torch: %s missing, set to 0\n" % name)
            else:
                missing.append(name)
        elif list(tensors[name].shape) != shape:
            mismatched.append("%s (checkpoint [%s], %s expects [%s])" % (
                name, ",".join(map(str, tensors[name].shape)), arch, ",".join(map(str, shape))))
    unexpected = sorted(k for k in tensors if k not in names)
    problems = []
    if mismatched:
        problems.append("shape mismatch: " + "; ".join(mismatched))
    if missing:
        problems.append("missing in the checkpoint: " + ", ".join(missing))
    if unexpected:
        problems.append("not in %s: %s" % (arch, ", ".join(unexpected)))
    if problems:
        fail("the checkpoint does not fit our '%s' (num_classes %s):\n  %s"
             % (arch, num_classes, "\n  ".join(problems)))
    return num_classes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--arch", help="check names and shapes against our zoo's model NAME")
    ap.add_argument("--num-classes", type=int, help="classes of --arch (default: from the classifier)")
    ap.add_argument("--prefix", help="keep only entries under this prefix (stripped)")
    ap.add_argument("--keep-dtype", action="store_true", help="do not convert floats to float32")
    a = ap.parse_args(argv)
    try:
        obj = torch.load(a.input, map_location="cpu")
    except Exception as e:
        fail("cannot read %s: %s" % (a.input, e))
    tensors = extract_state_dict(obj, a.prefix)
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu()
        if v.is_floating_point() and not a.keep_dtype:
            v = v.to(torch.float32)
        elif v.dtype in (torch.int32, torch.int16, torch.int8):
            v = v.to(torch.int64)
        out[k] = v.contiguous()
    meta = {"format": "pt", "source": os.path.basename(a.input), "converted_by": "scripts/convert_torch.py"}
    if a.arch:
        classes = check_against_zoo(out, a.arch, a.num_classes)
        meta["arch"] = a.arch
        meta["num_classes"] = str(classes)
    tmp = a.output + ".tmp"
    st.save(tmp, out, meta)
    os.replace(tmp, a.output)
    print("convert_torch: wrote %d tensors to %s%s" % (len(out), a.output,
                                                      " (checked against %s)" % a.arch if a.arch else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
