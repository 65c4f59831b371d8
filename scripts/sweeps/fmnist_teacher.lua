-- The Fashion-MNIST teacher (FashionResNet 16/16/32/64, scripts/configs/fmnist_teacher.lua),
-- trained into its config's own run directory, runs/fmnist_teacher. Training is deterministic,
-- so this reproduces the shipped scripts/assets/fmnist_teacher.safetensors (docs/workflow.md):
--   distill sweep scripts/sweeps/fmnist_teacher.lua
--   cp runs/fmnist_teacher/best.safetensors scripts/assets/fmnist_teacher.safetensors
-- (or leave the asset alone and give the study --set teacher.checkpoint=runs/fmnist_teacher/best.safetensors)
return {
  name = "fmnist_teacher",
  description = "Fashion-MNIST teacher FashionResNet 16/16/32/64",
  configs = { "scripts/configs/fmnist_teacher.lua" },
  run_dirs = "config",
}
