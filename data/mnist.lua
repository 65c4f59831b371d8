-- distill.data.mnist: MNIST from IDX files (plain or .gz).
--   require("distill.data.mnist"){root = dir, split = "train" | "test"}
return require("distill.data.idx").family {
  name = "mnist",
  default_root = "/usr/share/datasets/mnist",
  classes = { "0", "1", "2", "3", "4", "5", "6", "7", "8", "9" },
}
