-- The FSECD paper's Table 3 on CIFAR-100: the six same-family teacher -> student pairs,
-- every method (the paper's nine and issue 18's nine), under the paper's protocol (240
-- epochs, batch 64; scripts/configs/).
-- The paper reports one run per cell; this sweep runs seeds 1, 2 and 3 so that `distill
-- table` gives mean ± std (add --only seed=1 for the paper's single runs). 324 runs, in
-- runs/cifar100_table3/<pair config>-<method>-seed<k>. Teachers first: cifar100_teachers.lua.
--   distill sweep scripts/sweeps/cifar100_table3.lua --jobs 2 --set data.root=/data/cifar-100-binary
--   distill sweep scripts/sweeps/cifar100_table3.lua --emit slurm --threads 8 > table3.sbatch
--   distill table runs/cifar100_table3                    (methods x pairs, the paper's layout)
return {
  name = "cifar100_table3",
  description = "CIFAR-100 Table 3: same-family pairs, every method, 3 seeds",
  configs = {
    "scripts/configs/cifar100_resnet56_resnet20.lua",
    "scripts/configs/cifar100_resnet110_resnet32.lua",
    "scripts/configs/cifar100_resnet32x4_resnet8x4.lua",
    "scripts/configs/cifar100_wrn_40_2_wrn_16_2.lua",
    "scripts/configs/cifar100_wrn_40_2_wrn_40_1.lua",
    "scripts/configs/cifar100_vgg13_vgg8.lua",
  },
  methods = { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd",
              -- the rest of the RepDistiller/mdistiller zoo (issue 18)
              "sp", "cc", "pkt", "nst", "fsp", "vid", "ab", "ft", "reviewkd" },
  seeds = { 1, 2, 3 },
  teachers = "scripts/sweeps/cifar100_teachers.lua",
}
