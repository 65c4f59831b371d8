-- indexing: index_select, gather, scatter_add(_), masked_fill(_), cat, stack,
-- split, chunk, repeat. Indices count from 1 on the Lua side.
local distill = require "distill"
local h = require "support.helpers"

local fails = h.fails

local X = { { 1, 2, 3 }, { 4, 5, 6 }, { 7, 8, 9 } }

local function pieces(list)
  local out = {}
  for i, t in ipairs(list) do
    out[i] = t:totable()
  end
  return out
end

describe("indexing", function()
  describe("index_select", function()
    it("selects rows and columns with 1-based indices", function()
      local x = distill.tensor(X)
      assert.are.same({ { 7, 8, 9 }, { 1, 2, 3 } }, distill.index_select(x, 1, distill.tensor { 3, 1 }):totable())
      assert.are.same({ { 2, 2 }, { 5, 5 }, { 8, 8 } }, x:index_select(2, distill.tensor { 2, 2 }):totable())
      assert.are.same({ { 3 }, { 6 }, { 9 } }, x:index_select(-1, distill.tensor { 3 }):totable())
    end)

    it("accepts a Lua list of indices", function()
      assert.are.same({ { 4, 5, 6 } }, distill.tensor(X):index_select(1, { 2 }):totable())
    end)

    it("works on non-contiguous and float tensors and keeps the dtype", function()
      local xt = distill.tensor(X, "float32"):t()
      local r = xt:index_select(1, distill.tensor { 1, 3 })
      assert.are.equal("float32", r:dtype())
      assert.are.same({ { 1, 4, 7 }, { 3, 6, 9 } }, r:totable())
    end)

    it("returns an empty dim for an empty index", function()
      local r = distill.tensor(X):index_select(1, distill.tensor({}, "int64"))
      assert.are.same({ 0, 3 }, r:shape())
    end)

    it("rejects zero, negative and too large indices, in Lua numbering", function()
      local x = distill.tensor(X)
      fails("distill.index_select: index 0 out of range for dim 1 of size 3 (indices count from 1)",
        distill.index_select, x, 1, distill.tensor { 1, 0 })
      fails("distill.index_select: index -1 out of range for dim 2 of size 3",
        distill.index_select, x, 2, distill.tensor { -1 })
      fails("distill.index_select: index 4 out of range for dim 1 of size 3",
        distill.index_select, x, 1, { 4 })
    end)

    it("rejects bad index types, dims and 2-d indices", function()
      local x = distill.tensor(X)
      fails("distill.index_select: argument #3: index must be an int64 tensor, got float32",
        distill.index_select, x, 1, distill.tensor({ 1 }, "float32"))
      fails("distill.index_select: dim 3 out of range for a 2-d tensor", distill.index_select,
        x, 3, distill.tensor { 1 })
      fails("distill.index_select: index must be 1-d, got a 2-d tensor", distill.index_select,
        x, 1, distill.tensor { { 1 } })
      fails("distill.index_select: index list entry 1 is not an integer", distill.index_select,
        x, 1, { 1.5 })
      fails("distill.index_select: argument #3: expected an int64 index tensor or a list of "
        .. "integers, got string", distill.index_select, x, 1, "a")
    end)
  end)

  describe("gather", function()
    it("gathers along dim 2 and dim 1", function()
      local x = distill.tensor(X)
      assert.are.same({ { 1, 1 }, { 5, 4 }, { 9, 9 } },
        distill.gather(x, 2, distill.tensor { { 1, 1 }, { 2, 1 }, { 3, 3 } }):totable())
      assert.are.same({ { 7, 5, 3 } }, x:gather(1, distill.tensor { { 3, 2, 1 } }):totable())
    end)

    it("works on a transposed float tensor", function()
      local xt = distill.tensor(X, "float32"):t()   -- {{1,4,7},{2,5,8},{3,6,9}}
      assert.are.same({ { 7 }, { 2 } }, xt:gather(2, distill.tensor { { 3 }, { 1 } }):totable())
    end)

    it("rejects out-of-range indices and mismatched dims", function()
      local x = distill.tensor(X)
      fails("distill.gather: index 5 out of range for dim 2 of size 3 (indices count from 1)",
        distill.gather, x, 2, distill.tensor { { 5 } })
      fails("distill.gather: index 0 out of range for dim 1 of size 3",
        distill.gather, x, 1, distill.tensor { { 0 } })
      fails("distill.gather: index must have as many dims as the tensor: index [2], tensor [3, 3]",
        distill.gather, x, 1, distill.tensor { 1, 2 })
      fails("distill.gather: index [4, 1] is larger than the tensor [3, 3] in dim 1",
        distill.gather, x, 2, distill.tensor { { 1 }, { 1 }, { 1 }, { 1 } })
    end)
  end)

  describe("scatter_add", function()
    it("adds src into the indexed slots, in place", function()
      local z = distill.zeros { 2, 3 }
      local src = distill.tensor({ { 1, 2, 3 }, { 4, 5, 6 } }, "float32")
      local r = z:scatter_add_(1, distill.tensor { { 1, 2, 1 }, { 2, 1, 2 } }, src)
      assert.are.equal(z, r)
      assert.are.same({ { 1, 5, 3 }, { 4, 2, 6 } }, z:totable())
    end)

    it("accumulates repeated indices", function()
      local z = distill.zeros { 1, 2 }
      distill.scatter_add_(z, 2, distill.tensor { { 1, 1, 1 } }, distill.ones { 1, 3 })
      assert.are.same({ { 3, 0 } }, z:totable())
    end)

    it("has a copying form that leaves the input alone", function()
      local z = distill.zeros({ 3 }, "int64")
      local r = z:scatter_add(1, distill.tensor { 3, 3 }, distill.tensor { 10, 20 })
      assert.are.same({ 0, 0, 30 }, r:totable())
      assert.are.same({ 0, 0, 0 }, z:totable())
    end)

    it("rejects bad indices and dtypes without writing", function()
      local z = distill.zeros { 2 }
      fails("distill.scatter_add_: index 3 out of range for dim 1 of size 2",
        distill.scatter_add_, z, 1, distill.tensor { 1, 3 }, distill.ones { 2 })
      assert.are.same({ 0, 0 }, z:totable())
      fails("distill.scatter_add_: src must have the tensor's dtype float32, got int64",
        distill.scatter_add_, z, 1, distill.tensor { 1 }, distill.tensor { 1 })
      fails("distill.scatter_add_: src [1] must have the index's dims and be at least as large",
        distill.scatter_add_, z, 1, distill.tensor { 1, 2 }, distill.ones { 1 })
    end)
  end)

  describe("masked_fill", function()
    local M = { { 1, 2 }, { 3, 4 } }

    it("fills where the mask is set, in place", function()
      local x = distill.tensor(M, "float32")
      local r = x:masked_fill_(distill.tensor({ { 1, 0 }, { 0, 1 } }, "uint8"), -1)
      assert.are.equal(x, r)
      assert.are.same({ { -1, 2 }, { 3, -1 } }, x:totable())
    end)

    it("broadcasts the mask", function()
      local x = distill.tensor(M)
      x:masked_fill_(distill.tensor({ 1, 0 }, "uint8"), 0)
      assert.are.same({ { 0, 2 }, { 0, 4 } }, x:totable())
      x = distill.tensor(M)
      x:masked_fill_(distill.tensor({ { 0 }, { 1 } }, "uint8"), 9)
      assert.are.same({ { 1, 2 }, { 9, 9 } }, x:totable())
    end)

    it("writes through non-contiguous views", function()
      local x = distill.tensor(M)
      x:t():masked_fill_(distill.tensor({ { 0, 1 }, { 0, 0 } }, "uint8"), 7)
      assert.are.same({ { 1, 2 }, { 7, 4 } }, x:totable())
    end)

    it("has a copying form and takes a one-element tensor value", function()
      local x = distill.tensor(M, "float32")
      local r = distill.masked_fill(x, distill.tensor({ 1, 1 }, "uint8"), distill.tensor(0.5))
      assert.are.same({ { 0.5, 0.5 }, { 0.5, 0.5 } }, r:totable())
      assert.are.same(M, x:totable())
    end)

    it("rejects non-uint8 and non-broadcastable masks", function()
      local x = distill.tensor(M)
      fails("distill.masked_fill_: argument #2: mask must be a uint8 tensor", x.masked_fill_, x,
        distill.tensor { 1, 0 }, 0)
      fails("distill.masked_fill_: mask of shape [3] does not broadcast to the tensor's shape [2, 2]",
        x.masked_fill_, x, distill.tensor({ 1, 0, 1 }, "uint8"), 0)
      fails("distill.masked_fill_: fill value: expected a number, got string", x.masked_fill_, x,
        distill.tensor({ 1, 0 }, "uint8"), "x")
    end)
  end)

  describe("cat", function()
    local a = distill.tensor { { 1, 2 }, { 3, 4 } }

    it("concatenates along dim 1 (the default) and dim 2", function()
      assert.are.same({ { 1, 2 }, { 3, 4 }, { 5, 6 } },
        distill.cat { a, distill.tensor { { 5, 6 } } }:totable())
      assert.are.same({ { 1, 2, 7 }, { 3, 4, 8 } },
        distill.cat({ a, distill.tensor { { 7 }, { 8 } } }, 2):totable())
      assert.are.same({ { 1, 2, 1, 2 }, { 3, 4, 3, 4 } }, distill.cat({ a, a }, -1):totable())
    end)

    it("concatenates along every dim of a 3-d tensor", function()
      local t = distill.arange(8):view { 2, 2, 2 }
      assert.are.same({ 4, 2, 2 }, distill.cat({ t, t }, 1):shape())
      assert.are.same({ { { 0, 1 }, { 2, 3 }, { 0, 1 }, { 2, 3 } },
                        { { 4, 5 }, { 6, 7 }, { 4, 5 }, { 6, 7 } } }, distill.cat({ t, t }, 2):totable())
      assert.are.same({ { { 0, 1, 0, 1 }, { 2, 3, 2, 3 } }, { { 4, 5, 4, 5 }, { 6, 7, 6, 7 } } },
        distill.cat({ t, t }, 3):totable())
    end)

    it("reads non-contiguous inputs and skips 1-d empty tensors", function()
      assert.are.same({ { 1, 3 }, { 2, 4 }, { 1, 2 } },
        distill.cat { a:t(), distill.tensor({}, "int64"), a:narrow(1, 1, 1) }:totable())
    end)

    it("names the mismatching tensor and dim", function()
      fails("distill.cat: tensor 2 has shape [1, 2] but tensor 1 has [2, 2]: sizes must match "
        .. "except in dim 2 (dim 1: 1 vs 2)", distill.cat, { a, distill.tensor { { 5, 6 } } }, 2)
      fails("distill.cat: tensor 3 has shape [2] but tensor 1 has [2, 2]: all need the same "
        .. "number of dims", distill.cat, { a, a, distill.tensor { 1, 2 } })
      fails("distill.cat: all tensors must have the same dtype: tensor 2 is float32 but tensor 1 "
        .. "is int64", distill.cat, { a, a:float() })
    end)

    it("rejects bad arguments", function()
      fails("distill.cat: argument #1: expected a list of tensors, got a tensor", distill.cat, a)
      fails("distill.cat: expected a non-empty list of tensors", distill.cat, {})
      fails("distill.cat: list entry 2: expected a tensor, got number", distill.cat, { a, 1 })
      fails("distill.cat: dim 3 out of range for a 2-d tensor", distill.cat, { a, a }, 3)
      fails("distill.cat: tensor 1 is 0-d", distill.cat, { distill.tensor(1) })
    end)
  end)

  describe("stack", function()
    local p, q = distill.tensor { 1, 2 }, distill.tensor { 3, 4 }

    it("stacks along a new dim", function()
      assert.are.same({ { 1, 2 }, { 3, 4 } }, distill.stack { p, q }:totable())
      assert.are.same({ { 1, 3 }, { 2, 4 } }, distill.stack({ p, q }, 2):totable())
      assert.are.same({ { 1, 3 }, { 2, 4 } }, distill.stack({ p, q }, -1):totable())
      assert.are.same({ 3, 2, 2 }, distill.stack({ p:view { 1, 2 }, q:view { 1, 2 } }, 2)
        :repeat_tensor(3, 1, 1):shape())
    end)

    it("stacks 0-d tensors into a vector", function()
      assert.are.same({ 5, 6 }, distill.stack { distill.tensor(5), distill.tensor(6) }:totable())
    end)

    it("rejects different shapes, dtypes and dims", function()
      fails("distill.stack: all tensors must have the same shape: tensor 2 has [3] but tensor 1 has [2]",
        distill.stack, { p, distill.tensor { 1, 2, 3 } })
      fails("distill.stack: all tensors must have the same dtype", distill.stack, { p, q:float() })
      fails("distill.stack: dim 3 out of range for a 2-d tensor", distill.stack, { p, q }, 3)
    end)
  end)

  describe("split and chunk", function()
    it("splits into equal pieces with a shorter last one", function()
      local parts = distill.split(distill.arange(5), 2)
      assert.are.same({ { 0, 1 }, { 2, 3 }, { 4 } }, pieces(parts))
    end)

    it("splits by a list of sizes, along any dim, as views", function()
      local x = distill.arange(10):view { 2, 5 }
      local parts = x:split({ 1, 4 }, 2)
      assert.are.same({ { { 0 }, { 5 } }, { { 1, 2, 3, 4 }, { 6, 7, 8, 9 } } }, pieces(parts))
      assert.is_true(parts[2]:shares_storage(x))
      parts[1][1][1] = 42
      assert.are.equal(42, x[1][1])
    end)

    it("rejects sizes that do not add up", function()
      fails("distill.split: split sizes add up to 4 but dim 1 has size 5", distill.split,
        distill.arange(5), { 2, 2 })
      fails("distill.split: split size must be positive, got 0", distill.split, distill.arange(5), 0)
      fails("distill.split: split size 2 must be a non-negative integer", distill.split,
        distill.arange(5), { 2, -1 })
    end)

    it("chunks like torch (size ceil(n / chunks), maybe fewer chunks)", function()
      assert.are.same({ { 0, 1 }, { 2, 3 }, { 4 } }, pieces(distill.chunk(distill.arange(5), 3)))
      assert.are.same({ { 0, 1 }, { 2, 3 }, { 4, 5 } }, pieces(distill.arange(6):chunk(4)))
      local c = distill.arange(6):view { 2, 3 }:chunk(2, 2)
      assert.are.same({ { { 0, 1 }, { 3, 4 } }, { { 2 }, { 5 } } }, pieces(c))
      fails("distill.chunk: number of chunks must be positive, got 0", distill.chunk,
        distill.arange(5), 0)
    end)
  end)

  describe("repeat", function()
    it("tiles along each dim", function()
      local v = distill.tensor { 1, 2 }
      assert.are.same({ { 1, 2, 1, 2 }, { 1, 2, 1, 2 } }, distill["repeat"](v, { 2, 2 }):totable())
      local m = distill.tensor { { 1, 2 }, { 3, 4 } }
      assert.are.same({ { 1, 2, 1, 2 }, { 3, 4, 3, 4 } }, m:repeat_tensor { 1, 2 }:totable())
      assert.are.same({ { { 1, 2 }, { 3, 4 } }, { { 1, 2 }, { 3, 4 } } },
        m:repeat_tensor(2, 1, 1):totable())
      assert.are.same({ { 1, 3, 1, 3 }, { 2, 4, 2, 4 } }, m:t():repeat_tensor(1, 2):totable())
      assert.are.same({ 0, 2 }, m:repeat_tensor(0, 1):shape())
    end)

    it("needs a count for every dim", function()
      fails("distill.repeat: 1 repeat counts given for a 2-d tensor",
        distill["repeat"], distill.tensor { { 1 } }, { 2 })
      fails("distill.repeat: size -1 in dim 1 is negative", distill["repeat"], distill.tensor { 1 }, { -1 })
    end)
  end)
end)
