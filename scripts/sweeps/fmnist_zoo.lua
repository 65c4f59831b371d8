-- The rest of the distiller zoo (issue 18) on Fashion-MNIST, next to fmnist_table3.lua: the
-- shipped teacher (FashionResNet 16/16/32/64) distilled into FashionResNet 8/8/16/32 on all
-- 60000 training images, 10 epochs (scripts/configs/fmnist_study.lua: the staged methods'
-- 30 pre-training epochs and ReviewKD's warm-up shrink with the schedule to one epoch), by
-- SP, CC, PKT, NST, FSP, VID, AB, FT and ReviewKD, with CE as the baseline, seeds 1, 2 and 3.
-- 30 runs, in runs/fmnist_zoo/<method>-seed<k>.
--   distill sweep scripts/sweeps/fmnist_zoo.lua --jobs 2
--   distill table runs/fmnist_zoo runs/fmnist_table3           (every method x mean ± std)
--   distill plot runs/fmnist_zoo --mean -o runs/fmnist_zoo/curves
return {
  name = "fmnist_zoo",
  description = "Fashion-MNIST: issue 18's nine distillers against CE, 3 seeds",
  configs = { "scripts/configs/fmnist_study.lua" },
  methods = { "ce", "sp", "cc", "pkt", "nst", "fsp", "vid", "ab", "ft", "reviewkd" },
  seeds = { 1, 2, 3 },
  teachers = "distill train scripts/configs/fmnist_study_teacher.lua, then copy "
    .. "runs/fmnist_study_teacher/best.safetensors to scripts/assets/fmnist_study_teacher.safetensors",
}
