-- The distill command: subcommands, help, errors and exit codes.
local cli = require "distill.cli"

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

local function quote(s)
  return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- Runs scripts/distill (after an optional environment prefix); returns exit
-- code, stdout, stderr.
local function run(args, extra_env)
  local build = os.getenv("DISTILL_BUILD")
  local env = "OMP_WAIT_POLICY=passive " .. (build and ("DISTILL_BUILD=" .. quote(build) .. " ") or "")
    .. (extra_env or "")
  local out, err = tmp .. "/out", tmp .. "/err"
  local _, _, code = os.execute(env .. "lua5.4 scripts/distill " .. args .. " > " .. out .. " 2> " .. err
    .. " < /dev/null")
  local function slurp(p)
    local f = io.open(p)
    local t = f:read("a")
    f:close()
    return t
  end
  return code, slurp(out), slurp(err)
end

local CONFIG = tmp .. "/tiny.lua"
local f = assert(io.open(CONFIG, "w"))
f:write([[
return {
  name = "cli",
  student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
  data = { dataset = "synthetic", num_classes = 10, synthetic_size = 128, synthetic_test_size = 64,
           synthetic_shape = { 1, 12, 12 } },
  epochs = 2, batch_size = 32, seed = 2, workers = 1,
}
]])
f:close()

describe("distill command", function()
  it("prints help for the command and every subcommand", function()
    local code, out = run("--help")
    assert.are.equal(0, code)
    for _, c in ipairs { "train", "distill", "eval", "plot", "sweep", "table", "repl" } do
      assert.truthy(out:find(c, 1, true))
      local c2, out2 = run(c .. " --help")
      assert.are.equal(0, c2, c)
      assert.truthy(out2:find("usage: distill " .. c, 1, true), c)
    end
  end)

  it("--version names the version, the kernels in use, the CPU and the BLAS", function()
    local distill = require "distill"
    local code, out = run("--version")
    assert.are.equal(0, code)
    local info = distill.cpu_info()
    assert.truthy(out:find("distill " .. distill.version, 1, true), out)
    assert.truthy(out:find("kernels: " .. info.isa .. " (this CPU and build run "
      .. table.concat(info.isas, ", "), 1, true), out)
    assert.truthy(out:find("CPU: " .. info.model, 1, true), out)
    assert.truthy(out:find("BLAS: " .. info.blas, 1, true), out)
    code, out = run("version")
    assert.are.equal(0, code)
    assert.truthy(out:find("kernels: ", 1, true))
  end)

  it("fails with the ISA named when DISTILL_ISA is wrong", function()
    local code, _, err = run("--version", "DISTILL_ISA=avx9 ")
    assert.are.equal(1, code)
    assert.truthy(err:find("DISTILL_ISA=avx9: unknown instruction set", 1, true), err)
  end)

  it("lists the shipped configs", function()
    local code, out = run("configs")
    assert.are.equal(0, code)
    assert.truthy(out:find("cifar100_resnet32x4_resnet8x4", 1, true), out)
    assert.truthy(out:find("Fashion-MNIST", 1, true), out)
  end)

  it("evaluates a checkpoint on the dataset it records, and says when it records none", function()
    local code, out = run("eval scripts/assets/fmnist_teacher.safetensors --limit 100")
    assert.are.equal(0, code)
    assert.truthy(out:find("on fashion_mnist/test (100 images)", 1, true), out)
  end)

  it("explains how to get a missing teacher", function()
    local code, _, err = run("distill scripts/configs/cifar100_resnet56_resnet20.lua --set data.dataset=synthetic "
      .. "--set data.num_classes=10 --set data.synthetic_shape=3,32,32 --set run_dir=" .. quote(tmp .. "/no_teacher"))
    assert.are.equal(1, code)
    assert.truthy(err:find("the teacher checkpoint runs/cifar100_resnet56/best.safetensors does not exist", 1, true), err)
    assert.truthy(err:find("scripts/configs/cifar100_teacher_resnet56.lua", 1, true), err)
    assert.truthy(err:find("convert_torch.py", 1, true), err)
  end)

  it("exits 2 on usage errors, naming the valid choices", function()
    local code, _, err = run("frobnicate")
    assert.are.equal(2, code)
    assert.truthy(err:find("valid: configs, distill, eval, plot, repl, sweep, table, train", 1, true))
    code, _, err = run("train " .. quote(CONFIG) .. " --epochs 3")
    assert.are.equal(2, code)
    assert.truthy(err:find("unknown option '--epochs'", 1, true))
    assert.truthy(err:find("--set", 1, true))
    code = run("train")
    assert.are.equal(2, code)
    code, _, err = run("eval x.safetensors --data imagenet")
    assert.are.equal(2, code)
    assert.truthy(err:find("cifar100", 1, true))
  end)

  it("exits 1 on failures: unknown config keys, bad types, missing files", function()
    local code, _, err = run("train " .. quote(CONFIG) .. " --set epochz=3")
    assert.are.equal(1, code)
    assert.truthy(err:find("unknown key 'epochz'", 1, true))
    assert.truthy(err:find("epochs", 1, true))
    code, _, err = run("train " .. quote(CONFIG) .. " --set epochs=two")
    assert.are.equal(1, code)
    assert.truthy(err:find("expected a number", 1, true))
    code = run("eval " .. quote(tmp .. "/none.safetensors") .. " --data synthetic")
    assert.are.equal(1, code)
    -- a distiller's option out of range: the distiller and the option, no internal position
    code, _, err = run("train " .. quote(CONFIG) .. " --set methods.ce.1.label_smoothing=2 --set run_dir="
      .. quote(tmp .. "/smoothing"))
    assert.are.equal(1, code)
    assert.are.equal("distill: distillers.ce: option label_smoothing must be a number in [0, 1], got 2\n", err)
  end)

  it("trains, evaluates and plots a run", function()
    local dir = tmp .. "/run"
    local code, out, err = run("train " .. quote(CONFIG) .. " --set run_dir=" .. quote(dir)
      .. " --set epochs=1")
    assert.are.equal(0, code, err)
    assert.truthy(out:find("epoch 1/1", 1, true))
    assert.truthy(out:find("batch 4/4", 1, true), "plain progress lines without a terminal")
    code, out = run("eval " .. quote(dir .. "/best.safetensors") .. " --data synthetic")
    assert.are.equal(0, code)
    assert.truthy(out:match("top%-1 %d+%.%d+%%  top%-5 %d+%.%d+%%  loss %d"))
    code, out = run("plot " .. quote(dir) .. " " .. quote(dir) .. " -o " .. quote(tmp .. "/cmp.svg"))
    if io.open("/usr/bin/gnuplot") then
      assert.are.equal(0, code)
      local svg = io.open(tmp .. "/cmp.svg"):read("a")
      assert.truthy(svg:find("<svg", 1, true))
      assert.truthy(io.open(dir .. "/curves.svg"), "curves drawn during training")
      assert.truthy(io.open(dir .. "/curves.png"))
    end
    code = run("plot " .. quote(tmp .. "/nothing"))
    assert.are.equal(1, code)
  end)

  it("runs a script with its arguments", function()
    local script = tmp .. "/s.lua"
    local h = io.open(script, "w")
    h:write("local distill = require 'distill'\nprint(arg[1], arg[2], select('#', ...), distill.zeros{2}:numel())\n")
    h:close()
    local code, out = run(quote(script) .. " a b")
    assert.are.equal(0, code)
    assert.are.equal("a\tb\t2\t2\n", out)
    h = io.open(script, "w")
    h:write("error('boom')\n")
    h:close()
    local code2, _, err = run(quote(script))
    assert.are.equal(1, code2)
    assert.truthy(err:find("boom", 1, true))
  end)

  it("cli.main returns exit codes in-process", function()
    local sink = { write = function() end }
    assert.are.equal(0, cli.main({ "--help" }, { out = sink, err = sink }))
    assert.are.equal(2, cli.main({ "plot" }, { out = sink, err = sink }))
    assert.are.equal(2, cli.main({ "train", "a.lua", "b.lua" }, { out = sink, err = sink }))
  end)
end)
