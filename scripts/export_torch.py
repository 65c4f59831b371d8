#!/usr/bin/python3
"""Converts distill weights (safetensors) into a PyTorch state dict (.pth).

    /usr/bin/python3 scripts/export_torch.py IN.safetensors OUT.pth [--key model] [--wrap]

IN is either a plain {name: tensor} file (checkpoint.save_tensors, or
convert_torch.py output) or a distill checkpoint written by
distill.checkpoint.save({model = model:state_dict(), ...}), whose entries
are named "<key>/<name>"; --key picks the sub-table (default "model" when
present). OUT is a plain state dict (an OrderedDict of tensors) that
torch.load + model.load_state_dict accept; --wrap saves {'model': state_dict}
as the CRD code base does. Tensors keep their dtype and shape (int64
num_batches_tracked included). Runs with Debian's python3-torch.
"""
import argparse
import collections
import os
import re
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "spec", "oracle"))
import st  # noqa: E402


def unescape(component):
    """Undoes distill.checkpoint's escaping of a key path component."""
    if component == "%":
        return ""
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), component)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--key", help="sub-table of a distill checkpoint (default: model)")
    ap.add_argument("--wrap", action="store_true", help="save {'model': state_dict}")
    a = ap.parse_args(argv)
    try:
        tensors, meta = st.load(a.input)
    except Exception as e:
        sys.stderr.write("export_torch: cannot read %s: %s\n" % (a.input, e))
        return 1
    nested = any("/" in k for k in tensors)
    if nested or a.key:
        key = a.key or "model"
        prefix = key + "/"
        picked = {unescape(k[len(prefix):]): v for k, v in tensors.items()
                  if k.startswith(prefix) and "/" not in k[len(prefix):]}
        if not picked:
            tops = sorted({k.split("/", 1)[0] for k in tensors})
            sys.stderr.write("export_torch: %s has no '%s' entries (top-level keys: %s)\n"
                             % (a.input, key, ", ".join(tops)))
            return 1
        tensors = picked
    state = collections.OrderedDict((k, tensors[k].contiguous()) for k in sorted(tensors))
    obj = {"model": state} if a.wrap else state
    torch.save(obj, a.output)
    print("export_torch: wrote %d tensors to %s" % (len(state), a.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
