-- The FSECD paper's Table 2 on Fashion-MNIST (issue 16; results in docs/study.md): CE and
-- FSECD with the class and the instance policy at batch sizes 128, 512 and 1024, seeds 1-3,
-- over scripts/configs/fmnist_study.lua. 27 runs, in runs/fmnist_table2/<method>-bs<B>-seed<k>.
--
-- Learning rate: the paper does not state how it scaled the lr with the batch size. This
-- sweep uses the linear scaling rule of Goyal et al. (2017, "Accurate, Large Minibatch SGD"):
-- lr = 0.05 * B / 64 from the protocol's 0.05 at B = 64, with their gradual warm-up (here one
-- epoch of the ten, from a tenth of the lr: schedule.warmup_epochs) at every batch size.
--   distill sweep scripts/sweeps/fmnist_table2.lua --jobs 2
--   distill table runs/fmnist_table2 --cols batch_size        (the paper's Table 2 layout)
--   distill plot runs/fmnist_table2 --vs batch_size -o runs/fmnist_table2/top1_vs_batch
return {
  name = "fmnist_table2",
  description = "Fashion-MNIST: CE and both FSECD policies vs batch size, 3 seeds",
  configs = { "scripts/configs/fmnist_study.lua" },
  methods = { "ce", "fsecd_class", "fsecd" },
  axes = { batch_size = { 128, 512, 1024 } },
  seeds = { 1, 2, 3 },
  set = {
    ["optimizer.lr"] = function(run) return 0.05 * run.batch_size / 64 end,
    ["schedule.warmup_epochs"] = 1,
  },
  teachers = "distill train scripts/configs/fmnist_study_teacher.lua, then copy "
    .. "runs/fmnist_study_teacher/best.safetensors to scripts/assets/fmnist_study_teacher.safetensors",
}
