-- The CIFAR-100 teachers of the FSECD paper's Tables 2-4, trained with cross-entropy under
-- the paper's protocol (240 epochs, scripts/configs/cifar100_teacher_*.lua), each into its
-- config's own run directory runs/cifar100_<model>, where the pair configs look for
-- runs/cifar100_<model>/best.safetensors. Run it before the pair sweeps:
--   distill sweep scripts/sweeps/cifar100_teachers.lua --jobs 2 --set data.root=/data/cifar-100-binary
--   distill sweep scripts/sweeps/cifar100_teachers.lua --emit slurm --threads 8 > teachers.sbatch
return {
  name = "cifar100_teachers",
  description = "CIFAR-100 teachers: resnet56, resnet110, resnet32x4, wrn_40_2, vgg13, ResNet50",
  configs = {
    "scripts/configs/cifar100_teacher_resnet56.lua",
    "scripts/configs/cifar100_teacher_resnet110.lua",
    "scripts/configs/cifar100_teacher_resnet32x4.lua",
    "scripts/configs/cifar100_teacher_wrn_40_2.lua",
    "scripts/configs/cifar100_teacher_vgg13.lua",
    "scripts/configs/cifar100_teacher_ResNet50.lua",
  },
  run_dirs = "config",
}
