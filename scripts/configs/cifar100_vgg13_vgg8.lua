-- CIFAR-100 vgg13 -> vgg8 (FSECD paper, Table 3) under the published protocol:
-- SGD momentum 0.9, batch 64, 240 epochs, lr 0.05 /10 at 150, 180, 210, wd 5e-4,
-- RandomCrop(32, 4) + flip, CIFAR-100 mean/std. `method` selects the
-- distiller and its published weights: ce | kd | fitnet | at | rkd | ofd | crd | dkd | fsecd.
--   distill train scripts/configs/cifar100_teacher_vgg13.lua     (the teacher, once)
--   distill distill scripts/configs/cifar100_vgg13_vgg8.lua --set method=kd
-- Dataset: data.root, or $DISTILL_CIFAR_ROOT, or data/cifar100 (cifar-100-binary).
-- See lua/distill/config.lua (cifar100_pair) for every value; --set overrides any.
return require("distill.config").cifar100_pair{ teacher = "vgg13", student = "vgg8", method = "fsecd" }
