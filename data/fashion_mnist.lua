-- distill.data.fashion_mnist: Fashion-MNIST from IDX files (plain or .gz);
-- by default from Debian's dataset-fashion-mnist package.
--   require("distill.data.fashion_mnist"){split = "test"}    -- root optional
return require("distill.data.idx").family {
  name = "fashion_mnist",
  default_root = "/usr/share/datasets/fashion-mnist",
  classes = { "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
    "Sneaker", "Bag", "Ankle boot" },
}
