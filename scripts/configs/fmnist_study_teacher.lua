-- The teacher of the Fashion-MNIST study (docs/study.md): FashionResNet 16/16/32/64, the
-- demo teacher's network (scripts/configs/fmnist_teacher.lua), trained for 30 epochs instead
-- of 4 so that it is clearly better than the study's student, as the paper's fully trained
-- teachers are. lr 0.05 /10 at epochs 19, 23 and 26 (the protocol's 150, 180, 210 of 240).
-- Shipped as scripts/assets/fmnist_study_teacher.safetensors; reproduce it with
--   distill train scripts/configs/fmnist_study_teacher.lua
--   cp runs/fmnist_study_teacher/best.safetensors scripts/assets/fmnist_study_teacher.safetensors
return {
  name = "fmnist_study_teacher",
  description = "Fashion-MNIST study teacher FashionResNet 16/16/32/64, 30 epochs",
  student = { model = { family = "fmnist", name = "fmnist_resnet_t" } },
  data = {
    dataset = "fashion_mnist",          -- /usr/share/datasets/fashion-mnist (Debian)
    augment = "crop_flip", crop_padding = 2,
  },
  method = "ce",
  methods = { ce = { { distiller = "ce", weight = 1 } } },
  optimizer = { name = "SGD", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 },
  schedule = { name = "MultiStepLR", milestones = { 19, 23, 26 }, gamma = 0.1 },
  epochs = 30,
  batch_size = 64,
  seed = 1,
  workers = 2,
  run_dir = "runs/fmnist_study_teacher",
}
