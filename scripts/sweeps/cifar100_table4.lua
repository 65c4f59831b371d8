-- The FSECD paper's Table 4 on CIFAR-100: the five cross-family teacher -> student pairs,
-- every method (the paper's nine and issue 18's nine), under the paper's protocol (240
-- epochs, batch 64, lr 0.01 for the ShuffleNet and MobileNetV2 students; scripts/configs/). Seeds 1, 2 and 3 as in
-- cifar100_table3.lua (the paper reports single runs). 270 runs, in runs/cifar100_table4/.
-- Teachers first: cifar100_teachers.lua.
--   distill sweep scripts/sweeps/cifar100_table4.lua --jobs 2 --set data.root=/data/cifar-100-binary
--   distill table runs/cifar100_table4
return {
  name = "cifar100_table4",
  description = "CIFAR-100 Table 4: cross-family pairs, every method, 3 seeds",
  configs = {
    "scripts/configs/cifar100_resnet32x4_ShuffleV1.lua",
    "scripts/configs/cifar100_wrn_40_2_ShuffleV1.lua",
    "scripts/configs/cifar100_vgg13_MobileNetV2.lua",
    "scripts/configs/cifar100_ResNet50_MobileNetV2.lua",
    "scripts/configs/cifar100_resnet32x4_ShuffleV2.lua",
  },
  methods = { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd",
              -- the rest of the RepDistiller/mdistiller zoo (issue 18)
              "sp", "cc", "pkt", "nst", "fsp", "vid", "ab", "ft", "reviewkd" },
  seeds = { 1, 2, 3 },
  teachers = "scripts/sweeps/cifar100_teachers.lua",
}
