-- Integration: issue 18's SP, CC, PKT, NST, FSP, VID, AB, FT and ReviewKD, as the presets run
-- them (config.paper_methods: CE plus the term at its published weight;
-- FSP's pre-training stage, then CE alone), train the Fashion-MNIST
-- student from the shipped teacher to a higher test accuracy than CE alone
-- on the same budget. A short run's accuracy moves by a few points with
-- the seed, so every run here starts from one fixed seed (the same
-- initial student, the same batches) and ends with a third of its steps at
-- a tenth of the learning rate, which steadies the batch-norm statistics
-- that the test accuracy depends on. VID's lead over CE on this budget is
-- the thinnest, within what another seed moves either run: its assertion
-- holds for this seed, not for every seed.
local distill = require "distill"
local optim = require "distill.optim"
local distillers = require "distill.distillers"
local config = require "distill.config"
local fmnist = require "distill.models.fmnist"
local h = require "support.helpers"

local SEED = 1
local TRAIN, TEST, BATCH = 4096, 2000, 64
local STEPS, STAGE_STEPS = 150, 50
local LR = 0.05

describe("issue 18's distillers on Fashion-MNIST", function()
  if not h.with_fmnist() then
    return
  end

  local images, labels, test_images, test_labels, teacher, baseline
  -- ReviewKD's 20-epoch warm-up would hold its weight near zero for all of
  -- a short run, so here it has none
  local methods = config.paper_methods{ reviewkd_warmup = 0 }

  -- SGD steps over the training images in order, batch k at step k; the
  -- learning rate drops to LR / 10 for the last third when `decay`.
  local function train(student, objective, params, steps, decay)
    local opt = optim.SGD(params, { lr = LR, momentum = 0.9, weight_decay = 5e-4 })
    local preact = objective:needs_preact()
    for step = 1, steps do
      if decay and step == steps - steps // 3 + 1 then
        for _, group in ipairs(opt.param_groups) do
          group.lr = LR / 10
        end
      end
      local first = (step - 1) * BATCH % (TRAIN - BATCH + 1) + 1
      local x, y = images:narrow(1, first, BATCH), labels:narrow(1, first, BATCH)
      local t_out = distill.no_grad(function()
        return teacher:forward(x, { features = true, preact = preact })
      end)
      local s_out = student:forward(x, { features = true, preact = preact })
      opt:zero_grad()
      objective:loss(s_out, t_out, y, {}, 1):backward()
      opt:step()
    end
  end

  local function with_distillers(student, objective)
    local params = student:parameters()
    for _, p in ipairs(objective:parameters()) do
      params[#params + 1] = p
    end
    return params
  end

  -- test accuracy of the student trained by a method entry of paper_methods
  local function accuracy_of(entry)
    distill.manual_seed(SEED)
    local student = fmnist.fmnist_resnet_s{ num_classes = 10 }
    local context = { student = student, teacher = teacher, input_shape = { 1, 28, 28 } }
    -- a stage's distillers are the main terms' of the same name (FT's paraphraser)
    local objective = distillers.objective(entry, context)
    local shared = {}
    for _, term in ipairs(objective.terms) do
      shared[term.name] = term.distiller
    end
    for _, stage in ipairs(entry.stages or {}) do
      local stage_objective = distillers.objective(stage.terms, context)
      for _, term in ipairs(stage_objective.terms) do
        local main = shared[term.name]
        if main then
          term.distiller = main.stage_loss
            and setmetatable({ loss = function(_, ...) return main:stage_loss(...) end }, { __index = main })
            or main
        end
      end
      local params = stage.train == "distillers" and stage_objective:parameters()
        or with_distillers(student, stage_objective)
      train(student, stage_objective, params, STAGE_STEPS, false)
    end
    train(student, objective, with_distillers(student, objective), STEPS, true)
    student:eval()
    local logits = distill.no_grad(function() return student(test_images) end)
    return logits:argmax(2):eq(test_labels):float():mean():item()
  end

  setup(function()
    images, labels = h.fmnist_images("train", TRAIN)
    test_images, test_labels = h.fmnist_images("test", TEST)
    teacher = h.fmnist_teacher()
    baseline = accuracy_of(methods.ce)
  end)

  for _, method in ipairs { "sp", "cc", "pkt", "nst", "fsp", "vid", "ab", "ft", "reviewkd" } do
    it(method .. " trains the student above CE", function()
      local accuracy = accuracy_of(methods[method])
      print(("\n  %-4s test top-1 %.2f%%, CE %.2f%%"):format(method, accuracy * 100, baseline * 100))
      assert.is_true(accuracy > baseline, ("%s: %.4f, CE %.4f"):format(method, accuracy, baseline))
    end)
  end
end)
