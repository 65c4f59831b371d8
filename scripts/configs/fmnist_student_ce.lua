-- Fashion-MNIST student (FashionResNet 8/8/16/32) trained with cross-entropy only
-- from the shipped teacher scripts/assets/fmnist_teacher.safetensors, on the
-- demo's short budget (10000 training images, 3 epochs). Part of scripts/demo.lua.
--   distill distill scripts/configs/fmnist_student_ce.lua
-- Every value: lua/distill/config.lua (fmnist_student); --set overrides any,
-- e.g. --set epochs=10 --set data.train_limit=0 (all 60000 images).
return require("distill.config").fmnist_student{ method = "ce" }
