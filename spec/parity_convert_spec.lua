-- PyTorch checkpoint import/export (issue 8, "done when"): a ResNet32x4
-- trained for a few SGD steps in PyTorch (the oracle's own definition,
-- float32) is saved as the CRD code base saves it ({'model': state_dict,
-- 'epoch', 'optimizer', ...}), converted by scripts/convert_torch.py
-- --arch resnet32x4, loaded with the strict load_state_dict and evaluated
-- here: the logits equal PyTorch's (rel <= 1e-4). Also: the DataParallel
-- 'module.' prefix, a clear report when the architecture does not fit, and
-- the way back (scripts/export_torch.py -> torch.load + load_state_dict).
local distill = require "distill"
local checkpoint = require "distill.checkpoint"
local models = require "distill.models"
local parity = require "oracle.parity"

if parity.skip_without_torch("PyTorch parity: checkpoint conversion") then return end

local function convert(...)
  return parity.python("scripts/convert_torch.py", ...)
end

describe("PyTorch parity: checkpoint conversion", function()
  local dir, ref

  setup(function()
    dir = parity.tmpdir()
    parity.oracle("train_resnet32x4", dir)
    ref = checkpoint.load_tensors(dir .. "/resnet32x4_trained.ref.safetensors")
  end)

  teardown(function()
    parity.cleanup()
  end)

  local function eval_logits(path)
    local model = models.create("resnet32x4")
    model:load_state_dict(checkpoint.load_tensors(path))
    model:eval()
    return distill.no_grad(function() return model(ref.x) end), model
  end

  it("a PyTorch-trained resnet32x4 .pth converts and evaluates with PyTorch's logits", function()
    local out = dir .. "/resnet32x4.safetensors"
    local msg = convert(dir .. "/resnet32x4_trained.pth", out, "--arch", "resnet32x4")
    assert.truthy(msg:find("checked against resnet32x4", 1, true))
    local logits = eval_logits(out)
    local err = parity.rel(logits, ref.logits)
    print(("\n  parity resnet32x4 round trip: eval logits rel error %.2e"):format(err))
    assert.is_true(err <= parity.FORWARD_TOL, ("rel error %g"):format(err))
    local tensors, meta = checkpoint.load_tensors(out)
    assert.equals("int64", tensors["bn1.num_batches_tracked"]:dtype())
    assert.equals(3, tensors["bn1.num_batches_tracked"]:item())
    assert.equals("resnet32x4", meta.arch)
    assert.equals("100", meta.num_classes)
  end)

  it("strips a DataParallel 'module.' prefix", function()
    local out = dir .. "/dp.safetensors"
    convert(dir .. "/resnet32x4_dataparallel.pth", out, "--arch", "resnet32x4")
    local logits = eval_logits(out)
    assert.is_true(parity.rel(logits, ref.logits) <= parity.FORWARD_TOL)
  end)

  it("reports names and shapes that do not fit the architecture", function()
    local ok, err = pcall(convert, dir .. "/resnet32x4_trained.pth", dir .. "/bad.safetensors",
      "--arch", "resnet8x4")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("does not fit our 'resnet8x4'", 1, true))
    assert.truthy(tostring(err):find("not in resnet8x4: layer1.1.bn1.bias", 1, true))
    ok, err = pcall(convert, dir .. "/resnet32x4_trained.pth", dir .. "/bad.safetensors",
      "--arch", "resnet32x4", "--num-classes", "10")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("shape mismatch: fc.weight (checkpoint [100,256], resnet32x4 expects [10,256])",
      1, true))
    local f = io.open(dir .. "/bad.safetensors")
    assert.is_nil(f)
  end)

  it("exports back: torch.load + load_state_dict(strict) give the same logits", function()
    local _, model = eval_logits(dir .. "/resnet32x4.safetensors")
    -- a distill checkpoint with the model under "model" ...
    local ck = dir .. "/distill_ck.safetensors"
    checkpoint.save(ck, { model = model:state_dict(), meta = { epoch = 3 } })
    parity.python("scripts/export_torch.py", ck, dir .. "/back.pth")
    local out = parity.oracle("check_export", dir .. "/back.pth", dir .. "/resnet32x4_trained.ref.safetensors")
    local rel = tonumber(out:match("export%-ok rel=(%S+)"))
    assert.is_not_nil(rel, out)
    assert.is_true(rel <= parity.FORWARD_TOL, out)
    assert.truthy(out:find("nbt=3", 1, true), out)
    -- ... and a plain tensor file
    local plain = dir .. "/plain.safetensors"
    checkpoint.save_tensors(plain, model:state_dict())
    parity.python("scripts/export_torch.py", plain, dir .. "/back2.pth")
    out = parity.oracle("check_export", dir .. "/back2.pth", dir .. "/resnet32x4_trained.ref.safetensors")
    assert.truthy(out:find("export-ok", 1, true), out)
  end)
end)
