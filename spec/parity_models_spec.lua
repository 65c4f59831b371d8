-- PyTorch parity of every model in the zoo (issue 8).
-- For each model the oracle (spec/oracle/oracle.py, models subcommand)
-- builds its own PyTorch definition with a fixed seed (BN affine parameters
-- perturbed, running statistics calibrated on a batch), saves the weights
-- and a batch of 2 inputs (32x32; 64x64 for the ImageNet models) as
-- safetensors and records, in float32 PyTorch:
--   * eval mode: the logits, every feature (is_feat) and every preact feature;
--   * one training-mode forward (batch statistics) of another batch with
--     cross-entropy loss and backward: logits, loss, the gradient of every
--     parameter, and every buffer afterwards (running stats, num_batches_tracked).
-- Here the same weights go through load_state_dict (strict) and the same
-- computations run. rel = max|ours - torch| / max(max|torch|, 1e-12) per
-- tensor: forward (eval outputs, training logits/loss, running stats) <= 1e-4,
-- num_batches_tracked equal, gradients <= max(1e-3, 4 * sens) where sens is
-- PyTorch's own worst rel change of that gradient under a 1e-6 relative
-- perturbation of the input (training-mode BN at batch 2 and ReLU masks make
-- some gradients ill-conditioned; see docs/parity.md).
-- Convolution algorithm: all of the above runs with distill.conv_algorithm
-- "gemm" (im2col + GEMM, the direct sum), the engine's exact-order path. The
-- default ("auto": Winograd F(4x4, 3x3) for 3x3 stride-1 layers, whose float32
-- error is ~8x the direct sum's, spec/winograd_spec.lua) is then held to
-- parity.WINOGRAD_FORWARD_TOL (3e-4; the error adds up over ResNet110's 109
-- layers) on every eval output. Its training-mode gradients
-- are not compared: at batch 2 they move by up to ~20 % under forward
-- perturbations of a few 1e-6 (ReLU masks, batch statistics), far beyond
-- what the single-direction `sens` probe predicts.
-- The oracle runs as one background process that writes a model at a time
-- while we compare the previous one; each model's files are deleted after
-- its comparison. DISTILL_PARITY_MODELS="resnet8 vgg8" restricts the list;
-- DISTILL_PARITY_REPORT=path appends one line per model (for docs/parity.md).
local distill = require "distill"
local F = require "distill.functional"
local checkpoint = require "distill.checkpoint"
local models = require "distill.models"
local parity = require "oracle.parity"

if parity.skip_without_torch("PyTorch parity: models") then return end

local names = models.list()
local only = os.getenv("DISTILL_PARITY_MODELS")
if only and only ~= "" then
  names = {}
  for n in only:gmatch("%S+") do
    names[#names + 1] = n
  end
end

local KINDS = { "eval", "train", "state", "grad", "grad_wc", "sens" }
-- A gradient passes when rel(ours, PyTorch) <= max(1e-3, GRAD_SLACK * sens), where
-- sens is PyTorch's own largest rel change under a 1e-6 relative perturbation
-- of the input (oracle.py); "grad_wc" is the worst over the well-conditioned
-- gradients (GRAD_SLACK * sens <= 1e-3), which are held to 1e-3 itself.
local GRAD_SLACK = 4

describe("PyTorch parity: models", function()
  local dir, pipe
  local status = {}

  local function wait_for(name)
    while status[name] == nil do
      local line = pipe:read("l")
      if not line then
        error("the oracle stopped before writing " .. name, 2)
      end
      local what, model, msg = line:match("^(%S+) (%S+)%s?(.*)$")
      if what == "done" then
        status[model] = true
      elseif what == "error" then
        status[model] = msg
      end
    end
    if status[name] ~= true then
      error("oracle failed for " .. name .. ": " .. tostring(status[name]), 2)
    end
  end

  setup(function()
    dir = parity.tmpdir()
    local quoted = {}
    for i, n in ipairs(names) do
      quoted[i] = parity.quote(n)
    end
    pipe = io.popen(("%s spec/oracle/oracle.py stream %s %s 2>%s"):format(parity.PYTHON,
      parity.quote(dir), table.concat(quoted, " "), parity.quote(dir .. "/oracle.log")), "r")
  end)

  teardown(function()
    if pipe then
      pipe:read("a")
      pipe:close()
    end
    parity.cleanup()
  end)

  for _, name in ipairs(names) do
    it(name .. ": eval features/logits, training-mode gradients and BN statistics match PyTorch", function()
      local ok_wait, wait_err = pcall(wait_for, name)
      if not ok_wait then
        local log = io.open(dir .. "/oracle.log")
        local text = log and log:read("a") or ""
        if log then
          log:close()
        end
        error(tostring(wait_err) .. "\n" .. text:sub(-2000))
      end
      local wpath = ("%s/%s.weights.safetensors"):format(dir, name)
      local rpath = ("%s/%s.ref.safetensors"):format(dir, name)
      local rec = parity.recorder()
      local algo_before = distill.conv_algorithm()
      local ok, err = pcall(function()
        local weights = checkpoint.load_tensors(wpath)
        local ref, meta = checkpoint.load_tensors(rpath)
        local info = models.info(name)
        local model = models.create(name, { num_classes = info.num_classes })
        model:load_state_dict(weights)
        weights = nil

        -- eval mode: features, preact features, logits; with the default
        -- algorithm, then with the exact-order one used below
        model:eval()
        local nfeat = math.tointeger(tonumber(meta.features))
        for _, algo in ipairs({ "auto", "gemm" }) do
          distill.conv_algorithm(algo)
          local tol = algo == "auto" and parity.WINOGRAD_FORWARD_TOL or parity.FORWARD_TOL
          for _, preact in ipairs({ false, true }) do
            local out = distill.no_grad(function()
              return model:forward(ref.x, { features = true, preact = preact })
            end)
            local tag = (preact and "preact" or "feat") .. (algo == "auto" and " (auto)" or "")
            rec:check("eval", "eval logits " .. tag, out.logits, ref["eval.logits"], tol)
            if #out.feats ~= nfeat then
              rec.bad[#rec.bad + 1] = ("eval %s: %d features, PyTorch %d"):format(tag, #out.feats, nfeat)
            end
            for i = 1, math.min(#out.feats, nfeat) do
              rec:check("eval", ("eval %s[%d]"):format(tag, i), out.feats[i],
                ref[("eval.%s.%d"):format(preact and "preact" or "feat", i)], tol)
            end
            rec:check("eval", "eval pooled " .. tag, out.pooled, ref["eval.feat." .. nfeat], tol)
          end
        end

        -- training mode: one forward with batch statistics, CE, backward
        model:train()
        model:zero_grad()
        local logits = model(ref.x_train)
        local loss = F.cross_entropy(logits, ref.y1)
        rec:check("train", "train logits", logits:detach(), ref["train.logits"], parity.FORWARD_TOL)
        rec:check("train", "train loss", loss:detach():view{ 1 }, ref["train.loss"], parity.FORWARD_TOL)
        loss:backward()
        local params = model:named_parameters()
        for _, pair in ipairs(params) do
          local pname, p = pair[1], pair[2]
          local want, sens = ref["grad." .. pname], ref["sens." .. pname]
          if not want or not sens then
            rec.bad[#rec.bad + 1] = "parameter " .. pname .. " has no PyTorch counterpart"
          elseif not p.grad then
            rec.bad[#rec.bad + 1] = "no gradient reached " .. pname
          else
            -- PyTorch's own sensitivity to float32 rounding sets the floor
            local s = sens[1]
            rec:check("grad", "grad " .. pname, p.grad, want, math.max(parity.GRAD_TOL, GRAD_SLACK * s))
            rec:note("sens", "grad " .. pname, s)
            if GRAD_SLACK * s <= parity.GRAD_TOL then
              rec:note("grad_wc", "grad " .. pname, parity.rel(p.grad, want))
            end
          end
        end
        for _, pair in ipairs(model:named_buffers()) do
          local bname, b = pair[1], pair[2]
          local want = ref["state." .. bname]
          if not want then
            rec.bad[#rec.bad + 1] = "buffer " .. bname .. " has no PyTorch counterpart"
          elseif b:dtype() == "int64" then
            if b:item() ~= want:item() then
              rec.bad[#rec.bad + 1] = ("%s: %d, PyTorch %d"):format(bname, b:item(), want:item())
            end
          else
            rec:check("state", "state " .. bname, b, want, parity.FORWARD_TOL)
          end
        end
        model = nil
      end)
      distill.conv_algorithm(algo_before)
      os.remove(wpath)
      os.remove(rpath)
      collectgarbage()
      if not ok then
        rec.bad[#rec.bad + 1] = tostring(err)
      end
      local summary = rec:summary(KINDS)
      print(("\n  parity %-12s %4d tensors; worst %s"):format(name, rec.count, summary))
      local report = os.getenv("DISTILL_PARITY_REPORT")
      if report and report ~= "" then
        local f = io.open(report, "a")
        local cols = {}
        for i, kind in ipairs(KINDS) do
          local w = rec.worst[kind]
          cols[i] = w and ("%.1e"):format(w.err) or "-"
        end
        local worst_grad = rec.worst.grad and rec.worst.grad.name or "-"
        f:write(("| %s | %d | %s | %s | %s |\n"):format(name, rec.count, table.concat(cols, " | "),
          worst_grad, #rec.bad == 0 and "pass" or "FAIL"))
        f:close()
      end
      rec:assert_ok()
    end)
  end
end)
