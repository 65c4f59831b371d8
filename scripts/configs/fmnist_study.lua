-- The Fashion-MNIST study (issue 16; results in docs/study.md): the shipped teacher
-- scripts/assets/fmnist_teacher.safetensors (FashionResNet 16/16/32/64) distilled into
-- FashionResNet 8/8/16/32 on all 60000 training images, 10 epochs, batch 64, SGD lr 0.05
-- momentum 0.9 wd 5e-4, /10 at epochs 6, 8, 9, RandomCrop(28, 2) + flip.
-- `method`: ce | kd | fitnet | at | rkd | ofd | crd | dkd | fsecd | fsecd_class (and any
-- method added to config.paper_methods).
--   distill distill scripts/configs/fmnist_study.lua --set method=kd --set seed=2
--   distill sweep scripts/sweeps/fmnist_table3.lua --jobs 2      (every method, seeds 1-3)
-- Every value: lua/distill/config.lua (fmnist_study); --set overrides any.
return require("distill.config").fmnist_study{ method = "fsecd" }
