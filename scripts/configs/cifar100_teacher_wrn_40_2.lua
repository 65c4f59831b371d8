-- CIFAR-100 teacher wrn_40_2, cross-entropy under the paper protocol (240 epochs,
-- lr 0.05 /10 at 150, 180, 210, batch 64, wd 5e-4). Its best.safetensors is
-- the teacher checkpoint of the cifar100_wrn_40_2_*.lua pair configs.
--   distill train scripts/configs/cifar100_teacher_wrn_40_2.lua
return require("distill.config").cifar100_teacher("wrn_40_2")
