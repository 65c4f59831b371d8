-- The main job (bash scripts/demo.sh): distils the shipped Fashion-MNIST
-- teacher (scripts/assets/fmnist_teacher.safetensors, trained by
-- `distill train scripts/configs/fmnist_teacher.lua`) into a small student
-- three ways -- cross-entropy only, KD and FSECD (instance policy) -- on a
-- short budget, then prints the students' test accuracy side by side.
--   distill scripts/demo.lua [--epochs N] [--train-limit N] [--run-dir DIR]
-- Runs go to runs/demo/<method>/ (metrics, curves, checkpoints); the three
-- runs' curves are overlaid in runs/demo/comparison.svg.
local distill = require "distill"
local config = require "distill.config"
local trainer = require "distill.trainer"
local plot = require "distill.plot"
local log = require "distill.log"

local TEACHER = "scripts/assets/fmnist_teacher.safetensors"
local METHODS = {
  { key = "ce", label = "CE (no teacher)" },
  { key = "kd", label = "KD (T=4, 0.1 CE + 0.9 KL)" },
  { key = "fsecd", label = "FSECD instance (CE + FSECD)" },
}

local function parse_args(argv)
  local opts = { run_dir = "runs/demo", overrides = {} }
  local i = 1
  while i <= #argv do
    local a, v = argv[i], argv[i + 1]
    if a == "--epochs" and v then
      opts.overrides[#opts.overrides + 1] = "epochs=" .. v
      i = i + 1
    elseif a == "--train-limit" and v then
      opts.overrides[#opts.overrides + 1] = "data.train_limit=" .. v
      i = i + 1
    elseif a == "--run-dir" and v then
      opts.run_dir = v
      i = i + 1
    elseif a == "--help" or a == "-h" then
      print("usage: distill scripts/demo.lua [--epochs N] [--train-limit N] [--run-dir DIR]")
      os.exit(0)
    else
      io.stderr:write("demo: unknown argument '", tostring(a),
        "' (valid: --epochs N, --train-limit N, --run-dir DIR, --help)\n")
      os.exit(2)
    end
    i = i + 1
  end
  return opts
end

local opts = parse_args(arg or {})

if not io.open(TEACHER, "rb") then
  io.stderr:write("demo: the teacher checkpoint ", TEACHER, " is missing; make it with\n",
    "  scripts/distill train scripts/configs/fmnist_teacher.lua && ",
    "cp runs/fmnist_teacher/best.safetensors ", TEACHER, "\n")
  os.exit(1)
end

local started = distill.wallclock()
print(("distill demo: Fashion-MNIST, teacher %s -> student FashionResNet 8/8/16/32"):format(TEACHER))

-- the teacher's own test accuracy, for reference
local teacher_cfg = config.load("scripts/configs/fmnist_student_ce.lua")
local data = trainer.build_data(teacher_cfg)
local teacher_state, teacher_meta = trainer.load_model_state(TEACHER)
local teacher = trainer.build_model(teacher_meta and teacher_meta.model_spec
  or { family = "fmnist", name = "fmnist_resnet_t" }, data.num_classes)
teacher:load_state_dict(teacher_state)
local teacher_result = trainer.evaluate(teacher, data.test_loader)
data.train_loader:close()
data.test_loader:close()
print(("teacher: test top-1 %.2f%%, top-5 %.2f%% (%d parameters)"):format(
  teacher_result.top1, teacher_result.top5, teacher:num_parameters()))

local rows = {}
for _, method in ipairs(METHODS) do
  local path = "scripts/configs/fmnist_student_" .. method.key .. ".lua"
  local overrides = { "run_dir=" .. opts.run_dir .. "/" .. method.key }
  for _, o in ipairs(opts.overrides) do
    overrides[#overrides + 1] = o
  end
  print(("\n== %s  (distill distill %s)"):format(method.label, path))
  local t0 = distill.wallclock()
  local summary = trainer.run{
    mode = "distill", config_path = path, overrides = overrides, overwrite = true,
  }
  rows[#rows + 1] = { label = method.label, summary = summary, seconds = distill.wallclock() - t0 }
end

local dirs = {}
for _, method in ipairs(METHODS) do
  dirs[#dirs + 1] = opts.run_dir .. "/" .. method.key
end
local files = plot.overlay(dirs, opts.run_dir .. "/comparison.svg", { title = "Fashion-MNIST students: CE vs KD vs FSECD" })

print(("\n%-30s %12s %12s %12s %9s"):format("student (FashionResNet 8/8/16/32)", "test top-1", "best top-1",
  "test top-5", "time"))
print(string.rep("-", 79))
for _, row in ipairs(rows) do
  local s = row.summary
  print(("%-30s %11.2f%% %11.2f%% %11.2f%% %9s"):format(row.label, s.last_top1, s.best_top1,
    s.last_top5, log.format_duration(row.seconds)))
end
print(string.rep("-", 79))
print(("%-30s %11.2f%% %12s %11.2f%%"):format("teacher (FashionResNet 16/16/32/64)", teacher_result.top1, "",
  teacher_result.top5))
print(("\ntotal wall time %s; runs in %s/{ce,kd,fsecd}%s"):format(
  log.format_duration(distill.wallclock() - started), opts.run_dir,
  files and (", curves overlaid in " .. table.concat(files, ", ")) or ""))
