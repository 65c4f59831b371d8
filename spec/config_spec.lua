-- distill.config: loading, defaults, --set overrides, serialising, the shipped configs.
local config = require "distill.config"

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local tmp = os.tmpname()
os.remove(tmp)
os.execute("mkdir -p " .. tmp)

describe("distill.config", function()
  local path = tmp .. "/c.lua"
  write(path, [[
return {
  name = "t", epochs = 5, seed = 3,
  student = { model = "resnet8" },
  data = { dataset = "synthetic" },
  optimizer = { lr = 0.1 },
  methods = { ce = { { distiller = "ce", weight = 1 } },
              kd = { { distiller = "ce", weight = 0.1 }, { distiller = "kd", weight = 0.9, T = 4 } } },
}]])

  it("loads a file and fills the defaults", function()
    local cfg = config.load(path)
    assert.are.equal(5, cfg.epochs)
    assert.are.equal(64, cfg.batch_size)
    assert.are.equal("SGD", cfg.optimizer.name)
    assert.are.equal(0.1, cfg.optimizer.lr)
    assert.are.equal(0.9, cfg.optimizer.momentum)
    assert.are.same({ 150, 180, 210 }, cfg.schedule.milestones)
    assert.are.equal("ce", cfg.method)
  end)

  it("applies --set overrides with type checking", function()
    local cfg = config.load(path, { "epochs=7", "optimizer.lr=0.02", "method=kd",
      "optimizer.nesterov=true", "methods.kd.2.T=2", "schedule.milestones=3,4" })
    assert.are.equal(7, cfg.epochs)
    assert.are.equal(math.type(7), math.type(cfg.epochs))
    assert.are.equal(0.02, cfg.optimizer.lr)
    assert.are.equal("kd", cfg.method)
    assert.is_true(cfg.optimizer.nesterov)
    assert.are.equal(2, cfg.methods.kd[2].T)
    assert.are.same({ 3, 4 }, cfg.schedule.milestones)
  end)

  it("takes a number for a number, and addresses a method's terms by name", function()
    local cfg = config.load(path, { "method=kd", "methods.kd.kd.T=2.5", "methods.kd.ce.weight=0.2" })
    assert.are.equal(2.5, cfg.methods.kd[2].T)
    assert.are.equal(0.2, cfg.methods.kd[1].weight)
    local ok, err = pcall(config.load, path, { "methods.kd.crd.nce_k=5" })
    assert.is_false(ok)
    assert.truthy(err:find("method 'kd' has no term 'crd' (terms: ce, kd;", 1, true), err)
  end)

  it("rejects values that cannot be meant, naming the key", function()
    local cases = {
      { "data.train_limit=-5", "'data.train_limit' must be an integer of at least 0, got -5" },
      { "epochs=-1", "'epochs' must be an integer of at least 0, got -1" },
      { "epochs=0", "'epochs' must be at least 1 (0 runs only a method's pre-training stages, and method" },
      { "optimizer.lr=-0.1", "'optimizer.lr' must be a positive number, got -0.1" },
      { "optimizer.lr=0", "'optimizer.lr' must be a positive number, got 0" },
      { "optimizer.momentum=1", "'optimizer.momentum' must be in [0, 1), got 1" },
      { "optimizer.weight_decay=-1", "'optimizer.weight_decay' must be a number >= 0, got -1" },
      { "schedule.milestones=3,2", "'schedule.milestones' must be increasing positive epochs, got 2 at position 2" },
      { "schedule.gamma=0", "'schedule.gamma' must be a positive number, got 0" },
      { "schedule.warmup_epochs=9", "'schedule.warmup_epochs' must be an integer from 0 to 5, got 9" },
      { "workers=-1", "'workers' must be an integer from 0 to 256, got -1" },
      { "eval_every=0", "'eval_every' must be an integer of at least 1, got 0" },
      { "progress=loud", "'progress' must be auto, bar, lines, none, got loud" },
      { "data.augment=rotate", "'data.augment' must be none, crop_flip, got rotate" },
      { "data.std=0.5,0", "'data.std[2]' must be a positive number, got 0" },
      { "methods.ce.1.weight=1e999", "'weight' must be a finite number or a function of epoch, got" },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(function() config.validate(config.load(path, { case[1] }), "train") end)
      assert.is_false(ok, case[1])
      assert.truthy(err:find(case[2], 1, true), ("%s: %s"):format(case[1], err))
    end
  end)

  it("names the whole path of a config file in its errors, however long", function()
    local dir = tmp .. "/" .. string.rep("a_long_folder_name/", 6)
    os.execute("mkdir -p " .. dir)
    local bad = dir .. "broken_config.lua"
    write(bad, "return {\n  epochs = ,\n}\n")
    local ok, err = pcall(config.load, bad)
    assert.is_false(ok)
    assert.truthy(err:find(bad .. ":2: ", 1, true), err)
    write(bad, "local x = nil\nreturn x.y\n")
    ok, err = pcall(config.load, bad)
    assert.is_false(ok)
    assert.truthy(err:find(bad .. ":2: ", 1, true), err)
    ok, err = pcall(config.load_string, "return {", {}, bad)
    assert.is_false(ok)
    assert.truthy(err:find(bad, 1, true), err)
  end)

  it("rejects wrong types and unknown keys, listing the valid ones", function()
    -- a number for a number; whether it must be whole is validate's business
    assert.has_error(function() config.validate(config.load(path, { "epochs=1.5" }), "train") end,
      "config: 'epochs' must be an integer of at least 0, got 1.5")
    assert.has_error(function() config.load(path, { "epochs=two" }) end,
      "config: --set epochs: expected a number, got 'two'")
    assert.has_error(function() config.load(path, { "optimizer.nesterov=maybe" }) end)
    assert.has_error(function() config.load(path, { "optimizer.lr=fast" }) end)
    local ok, err = pcall(config.load, path, { "epoch=3" })
    assert.is_false(ok)
    assert.truthy(err:find("unknown key 'epoch'", 1, true))
    assert.truthy(err:find("epochs", 1, true) and err:find("batch_size", 1, true))
    ok, err = pcall(config.load, path, { "optimizer.learning_rate=3" })
    assert.is_false(ok)
    assert.truthy(err:find("optimizer.learning_rate", 1, true))
    assert.truthy(err:find("weight_decay", 1, true))
    ok, err = pcall(config.load, path, { "noequals" })
    assert.is_false(ok)
    assert.truthy(err:find("key=value", 1, true))
  end)

  it("rejects unknown keys in the file", function()
    local bad = tmp .. "/bad.lua"
    write(bad, "return { epochz = 3, student = {model = 'resnet8'} }")
    local ok, err = pcall(config.load, bad)
    assert.is_false(ok)
    assert.truthy(err:find("unknown key 'epochz'", 1, true))
    write(bad, "return { data = { datasett = 'x' } }")
    ok, err = pcall(config.load, bad)
    assert.is_false(ok)
    assert.truthy(err:find("data.datasett", 1, true))
  end)

  it("validates the method against the mode", function()
    local cfg = config.load(path, { "method=kd" })
    assert.has_error(function() config.validate(cfg, "train") end)
    cfg = config.load(path, { "method=nope" })
    local ok, err = pcall(config.validate, cfg, "train")
    assert.is_false(ok)
    assert.truthy(err:find("ce, kd", 1, true))
  end)

  it("serialises to loadable Lua that round-trips", function()
    local cfg = config.load(path, { "epochs=9" })
    cfg.methods.ce[1].weight = function(epoch) return epoch end
    local text = config.serialize(cfg)
    local back = assert(load(text))()
    assert.are.equal(9, back.epochs)
    assert.are.equal(0.1, back.optimizer.lr)
    assert.are.same(cfg.schedule.milestones, back.schedule.milestones)
    assert.truthy(text:find("function at", 1, true))
  end)

  it("ships a config for every Table 3-4 pair with the published protocol", function()
    local pairs_ = {
      { "resnet56", "resnet20", 0.05, 2 }, { "resnet110", "resnet32", 0.05, 2 },
      { "resnet32x4", "resnet8x4", 0.05, 8 }, { "wrn_40_2", "wrn_16_2", 0.05, 6 },
      { "wrn_40_2", "wrn_40_1", 0.05, 6 }, { "vgg13", "vgg8", 0.05, 6 },
      { "resnet32x4", "ShuffleV1", 0.01, 8 }, { "wrn_40_2", "ShuffleV1", 0.01, 6 },
      { "vgg13", "MobileNetV2", 0.01, 6 }, { "ResNet50", "MobileNetV2", 0.01, 8 },
      { "resnet32x4", "ShuffleV2", 0.01, 8 },
    }
    for _, p in ipairs(pairs_) do
      local file = ("scripts/configs/cifar100_%s_%s.lua"):format(p[1], p[2])
      local cfg = config.load(file, { "method=kd" })
      assert.are.equal(p[1], cfg.teacher.model)
      assert.are.equal(p[2], cfg.student.model)
      assert.are.equal(240, cfg.epochs)
      assert.are.equal(64, cfg.batch_size)
      assert.are.equal(p[3], cfg.optimizer.lr, file)
      assert.are.equal(5e-4, cfg.optimizer.weight_decay)
      assert.are.equal(0.9, cfg.optimizer.momentum)
      assert.are.same({ 150, 180, 210 }, cfg.schedule.milestones)
      assert.are.equal("crop_flip", cfg.data.augment)
      assert.are.same({ 0.5071, 0.4867, 0.4408 }, cfg.data.mean)
      assert.are.equal(0.9, cfg.methods.kd[2].weight)
      assert.are.equal(p[4], cfg.methods.dkd[2].beta, file)
      for _, m in ipairs { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd" } do
        assert.is_table(cfg.methods[m], m)
      end
      assert.are.equal(100, cfg.methods.fitnet[2].weight)
      assert.are.equal(1000, cfg.methods.at[2].weight)
      assert.are.equal(0.001, cfg.methods.ofd[2].weight)
      assert.are.equal(0.8, cfg.methods.crd[2].weight)
      assert.are.equal("instance", cfg.methods.fsecd[2].policy)
      assert.are.equal("class", cfg.methods.fsecd_class[2].policy)
      config.validate(cfg, "distill")
      -- issue 18's methods at the CRD code base's weights (FSP: its stage, then CE)
      for m, weight in pairs { sp = 3000, cc = 0.02, pkt = 30000, nst = 50, vid = 1 } do
        assert.are.equal(weight, cfg.methods[m][2].weight, m)
        assert.are.equal(m, cfg.methods[m][2].distiller)
        cfg.method = m
        config.validate(cfg, "distill")
      end
      assert.are.equal("fsp", cfg.methods.fsp.stages[1].terms[1].distiller)
      assert.are.equal(30, cfg.methods.fsp.stages[1].epochs)
      assert.are.same({ { distiller = "ce", weight = 1 } }, { cfg.methods.fsp[1], cfg.methods.fsp[2] })
    end
    for _, t in ipairs { "resnet56", "resnet110", "resnet32x4", "wrn_40_2", "vgg13", "ResNet50" } do
      local cfg = config.load("scripts/configs/cifar100_teacher_" .. t .. ".lua")
      config.validate(cfg, "train")
      assert.are.equal(t, cfg.student.model)
    end
  end)

  it("ships the Fashion-MNIST configs", function()
    config.validate(config.load("scripts/configs/fmnist_teacher.lua"), "train")
    for _, m in ipairs { "ce", "kd", "fsecd" } do
      local cfg = config.load("scripts/configs/fmnist_student_" .. m .. ".lua")
      assert.are.equal(m, cfg.method)
      config.validate(cfg, "distill")
    end
    for _, m in ipairs { "sp", "cc", "pkt", "nst", "fsp", "vid" } do
      local cfg = config.load("scripts/configs/fmnist_student_kd.lua", { "method=" .. m })
      assert.are.same(config.paper_methods()[m][2], cfg.methods[m][2], m)
      config.validate(cfg, "distill")
    end
    assert.are.equal(1, config.load("scripts/configs/fmnist_student_kd.lua").methods.fsp.stages[1].epochs,
      "the short budget's one stage epoch")
  end)

  it("ships the Fashion-MNIST study config: every paper method plus FSECD with the class policy", function()
    local cfg = config.load("scripts/configs/fmnist_study.lua")
    assert.are.equal(0, cfg.data.train_limit, "all 60000 training images")
    assert.are.equal("crop_flip", cfg.data.augment)
    assert.are.equal(2, cfg.data.crop_padding)
    assert.truthy(cfg.teacher.checkpoint:find("/scripts/assets/fmnist_study_teacher.safetensors$"), cfg.teacher.checkpoint)
    assert.are.equal("fmnist_resnet_s", cfg.student.model.name)
    assert.are.equal(10, cfg.epochs)
    assert.are.equal(64, cfg.batch_size)
    assert.are.same({ 6, 8, 9 }, cfg.schedule.milestones)
    assert.are.equal(0.1, cfg.schedule.gamma)
    assert.are.same({ 0.05, 0.9, 5e-4 }, { cfg.optimizer.lr, cfg.optimizer.momentum,
      cfg.optimizer.weight_decay })
    for name in pairs(config.paper_methods()) do
      assert.is_table(cfg.methods[name], name)
    end
    assert.are.equal("class", cfg.methods.fsecd_class[2].policy)
    assert.are.equal("instance", cfg.methods.fsecd[2].policy)
    assert.are.equal(cfg.methods.fsecd[2].tau, cfg.methods.fsecd_class[2].tau)
    assert.are.equal(1, cfg.methods.dkd[2].warmup, "20 of 240 epochs, scaled to 10")
    assert.are.equal(1, cfg.methods.reviewkd[2].warmup, "20 of 240 epochs, scaled to 10")
    for _, staged in ipairs { "ab", "ft", "fsp" } do
      assert.are.equal(1, cfg.methods[staged].stages[1].epochs, staged .. ": 30 of 240 epochs, scaled to 10")
    end
    assert.are.equal(0.01, cfg.methods.ft.stages[1].optimizer.lr)
    for name in pairs(cfg.methods) do
      cfg.method = name
      config.validate(cfg, "distill")
    end
    local long = config.fmnist_study{ epochs = 240, method = "kd", seed = 3 }
    assert.are.same({ 150, 180, 210 }, long.schedule.milestones)
    assert.are.equal(20, long.methods.dkd[2].warmup)
    assert.are.equal(30, long.methods.fsp.stages[1].epochs)
    assert.are.equal("kd", long.method)
    assert.are.equal(3, long.seed)
    assert.has_error(function() config.fmnist_study{ epochs = 0 } end,
      "config.fmnist_study: epochs must be a positive integer, got 0")
    assert.has_error(function() config.fmnist_study("x") end)
  end)
end)
