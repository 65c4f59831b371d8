-- CIFAR-100 teacher vgg13, cross-entropy under the paper protocol (240 epochs,
-- lr 0.05 /10 at 150, 180, 210, batch 64, wd 5e-4). Its best.safetensors is
-- the teacher checkpoint of the cifar100_vgg13_*.lua pair configs.
--   distill train scripts/configs/cifar100_teacher_vgg13.lua
return require("distill.config").cifar100_teacher("vgg13")
