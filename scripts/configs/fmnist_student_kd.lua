-- Fashion-MNIST student (FashionResNet 8/8/16/32) trained with KD (0.1 CE + 0.9 KL, T = 4)
-- from the shipped teacher scripts/assets/fmnist_teacher.safetensors, on the
-- demo's short budget (10000 training images, 3 epochs). Part of scripts/demo.lua.
--   distill distill scripts/configs/fmnist_student_kd.lua
-- Every value: lua/distill/config.lua (fmnist_student); --set overrides any,
-- e.g. --set epochs=10 --set data.train_limit=0 (all 60000 images).
return require("distill.config").fmnist_student{ method = "kd" }
