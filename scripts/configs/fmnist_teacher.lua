-- Fashion-MNIST teacher for the demo: a small ResNet (widths 16/16/32/64,
-- one basic block per stage, 78 k parameters) on 1x28x28 images, sized for
-- a 2-core machine (about 4-5 minutes per epoch there). Trained by
--   distill train scripts/configs/fmnist_teacher.lua
-- and shipped as scripts/assets/fmnist_teacher.safetensors (docs/workflow.md).
return {
  name = "fmnist_teacher",
  description = "Fashion-MNIST teacher, FashionResNet 16/16/32/64",
  student = { model = { family = "fmnist", name = "fmnist_resnet_t" } },
  data = {
    dataset = "fashion_mnist",          -- /usr/share/datasets/fashion-mnist (Debian)
    augment = "crop_flip", crop_padding = 2,
  },
  method = "ce",
  methods = { ce = { { distiller = "ce", weight = 1 } } },
  optimizer = { name = "SGD", lr = 0.05, momentum = 0.9, weight_decay = 5e-4 },
  schedule = { name = "MultiStepLR", milestones = { 3 }, gamma = 0.1 },
  epochs = 4,
  batch_size = 64,
  seed = 1,
  workers = 2,
  run_dir = "runs/fmnist_teacher",
}
