-- The FSECD paper's Table 3 on Fashion-MNIST (issue 16; results in docs/study.md): the
-- shipped study teacher (FashionResNet 16/16/32/64, 30 epochs) distilled into
-- FashionResNet 8/8/16/32 on all 60000 training images, 10 epochs
-- (scripts/configs/fmnist_study.lua), by every method, seeds 1, 2 and 3. 30 runs, in
-- runs/fmnist_table3/<method>-seed<k>.
--   distill sweep scripts/sweeps/fmnist_table3.lua --jobs 2
--   distill table runs/fmnist_table3                          (methods x mean ± std)
--   distill plot runs/fmnist_table3 --mean -o runs/fmnist_table3/curves
return {
  name = "fmnist_table3",
  description = "Fashion-MNIST: every distiller against CE, 3 seeds",
  configs = { "scripts/configs/fmnist_study.lua" },
  methods = { "ce", "kd", "fitnet", "at", "rkd", "ofd", "crd", "dkd", "fsecd_class", "fsecd" },
  seeds = { 1, 2, 3 },
  teachers = "distill train scripts/configs/fmnist_study_teacher.lua, then copy "
    .. "runs/fmnist_study_teacher/best.safetensors to scripts/assets/fmnist_study_teacher.safetensors",
}
