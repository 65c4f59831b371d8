-- The FSECD paper's Table 2 on CIFAR-100: CE and FSECD with the class and the instance
-- policy at batch sizes 128, 512 and 1024, for WRN-40-2 -> WRN-40-1 and ResNet32x4 ->
-- ResNet8x4, seeds 1-3. 54 runs, in runs/cifar100_table2/<pair>-<method>-bs<B>-seed<k>.
--
-- Learning rate: the paper does not state how it scaled the lr with the batch size. This
-- sweep uses the linear scaling rule of Goyal et al. (2017, "Accurate, Large Minibatch SGD"):
-- lr = 0.05 * B / 64 from the protocol's 0.05 at B = 64, with their gradual warm-up over the
-- first 5 epochs (schedule.warmup_epochs, from a tenth of the lr) at every batch size.
-- Teachers first: cifar100_teachers.lua.
--   distill sweep scripts/sweeps/cifar100_table2.lua --jobs 2 --set data.root=/data/cifar-100-binary
--   distill table runs/cifar100_table2 --rows method,pair --cols batch_size   (the paper's layout)
--   distill plot runs/cifar100_table2 --vs batch_size --where pair=resnet32x4->resnet8x4
return {
  name = "cifar100_table2",
  description = "CIFAR-100 Table 2: CE and both FSECD policies vs batch size, 3 seeds",
  configs = {
    "scripts/configs/cifar100_wrn_40_2_wrn_40_1.lua",
    "scripts/configs/cifar100_resnet32x4_resnet8x4.lua",
  },
  methods = { "ce", "fsecd_class", "fsecd" },
  axes = { batch_size = { 128, 512, 1024 } },
  seeds = { 1, 2, 3 },
  set = {
    ["optimizer.lr"] = function(run) return 0.05 * run.batch_size / 64 end,
    ["schedule.warmup_epochs"] = 5,
  },
  teachers = "scripts/sweeps/cifar100_teachers.lua",
}
