local distill = require "distill"
local nn = require "distill.nn"
local gradcheck = require "distill.gradcheck"
local F = distill.F
local h = require "support.helpers"

local function names(pairs_list)
  local list = {}
  for i, pair in ipairs(pairs_list) do
    list[i] = pair[1]
  end
  return list
end

local sorted_keys = h.sorted_keys

local function mean_and_std(t)
  local v = t:contiguous():view{-1}:totable()
  local sum, sq = 0, 0
  for _, x in ipairs(v) do
    sum = sum + x
  end
  local mean = sum / #v
  for _, x in ipairs(v) do
    sq = sq + (x - mean) ^ 2
  end
  return mean, math.sqrt(sq / (#v - 1))
end

-- A small custom module, as a user would write one.
local Block = nn.class("Block")
function Block:init(channels)
  self.conv1 = nn.Conv2d(channels, channels, 3, { padding = 1, bias = false })
  self.bn1 = nn.BatchNorm2d(channels)
  self.shortcut = nn.Sequential(nn.Conv2d(channels, channels, 1, { bias = false }),
    nn.BatchNorm2d(channels))
end
function Block:forward(x)
  return F.relu(self.bn1(self.conv1(x)) + self.shortcut(x))
end

describe("nn", function()
  before_each(function()
    distill.manual_seed(3)
  end)

  describe("Module", function()
    it("names parameters in PyTorch's dotted order", function()
      local net = nn.Sequential(Block(4), nn.Linear(4, 2))
      assert.are.same({
        "0.conv1.weight", "0.bn1.weight", "0.bn1.bias",
        "0.shortcut.0.weight", "0.shortcut.1.weight", "0.shortcut.1.bias",
        "1.weight", "1.bias",
      }, names(net:named_parameters()))
      assert.are.same({
        "0.bn1.running_mean", "0.bn1.running_var", "0.bn1.num_batches_tracked",
        "0.shortcut.1.running_mean", "0.shortcut.1.running_var",
        "0.shortcut.1.num_batches_tracked",
      }, names(net:named_buffers()))
    end)

    it("makes parameters require grad and counts them", function()
      local lin = nn.Linear(3, 5)
      assert.is_true(lin.weight.requires_grad)
      assert.are.equal(3 * 5 + 5, lin:num_parameters())
      assert.are.equal(2, #lin:parameters())
    end)

    it("lists a shared module's parameters once", function()
      local shared = nn.Linear(2, 2)
      local net = nn.Sequential(shared, shared)
      assert.are.equal(2, #net:parameters())
    end)

    it("walks children and modules", function()
      local net = nn.Sequential(Block(2), nn.ReLU())
      assert.are.equal(2, #net:children())
      assert.are.same({ "", "0", "0.conv1", "0.bn1", "0.shortcut", "0.shortcut.0",
        "0.shortcut.1", "1" }, names(net:named_modules()))
    end)

    it("switches train and eval recursively", function()
      local net = nn.Sequential(Block(2))
      net:eval()
      assert.is_false(net[1].bn1.training)
      net:train()
      assert.is_true(net[1].shortcut[2].training)
    end)

    it("zero_grad clears gradients", function()
      local lin = nn.Linear(2, 2)
      lin.weight.grad = distill.ones{2, 2}
      lin:zero_grad()
      assert.is_nil(lin.weight.grad)
    end)

    it("apply visits children before the parent", function()
      local order = {}
      nn.Sequential(nn.ReLU(), nn.Identity()):apply(function(m) order[#order + 1] = m.__name end)
      assert.are.same({ "ReLU", "Identity", "Sequential" }, order)
    end)

    it("prints the tree like PyTorch, numbered children with their Lua index too", function()
      local net = nn.Sequential(nn.Conv2d(3, 8, 3, { padding = 1, bias = false }), nn.ReLU(),
        nn.Linear(8, 2))
      assert.are.equal(table.concat({
        "Sequential(",
        "  [1] (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=false)",
        "  [2] (1): ReLU()",
        "  [3] (2): Linear(in_features=8, out_features=2, bias=true)",
        ")",
      }, "\n"), tostring(net))
      assert.are.equal(net[2], net._modules["1"])
      local block = nn.class("Block")
      function block:init() self.conv = nn.Conv2d(1, 1, 1) end
      assert.truthy(tostring(block()):find("\n  (conv): Conv2d", 1, true))
    end)

    it("indexes Sequential from 1 while naming children from 0", function()
      local a, b = nn.ReLU(), nn.Identity()
      local net = nn.Sequential{ a, b }
      assert.are.equal(a, net[1])
      assert.are.equal(b, net[-1])
      assert.are.equal(2, #net)
      assert.are.equal(a, net._modules["0"])
    end)

    it("runs Sequential's children in registration order, skipping removed ones", function()
      local Scale = nn.class("Scale")
      function Scale:init(k) self.k = k end
      function Scale:forward(x) return x * self.k + 1 end
      local net = nn.Sequential(Scale(2), Scale(3), Scale(5))
      assert.are.same({ 51 }, net(distill.tensor { 1.0 }):totable())   -- ((1*2+1)*3+1)*5+1
      net["1"] = nil                                                    -- the child named "1"
      assert.are.same({ 16 }, net(distill.tensor { 1.0 }):totable())   -- (1*2+1)*5+1
      assert.are.equal(2, #net:children())
    end)

    it("registers modules assigned to fields", function()
      local Net = nn.class("Net")
      function Net:init() self.head = nn.Linear(2, 3) end
      local net = Net()
      assert.are.same({ "head.weight", "head.bias" }, names(net:named_parameters()))
    end)

    it("rejects bad names and values", function()
      local m = nn.Module.class("M")()
      assert.has_error(function() m:register_parameter("a.b", distill.zeros{1}) end)
      assert.has_error(function() m:add_module("x", 3) end)
      local ok, err = pcall(function() m:register_buffer("b", "no") end)
      assert.is_false(ok)
      assert.truthy(err:find("must be a tensor or nil", 1, true))
    end)
  end)

  describe("state_dict", function()
    it("holds parameters and persistent buffers under dotted names", function()
      local net = nn.Sequential(Block(2))
      assert.are.same({
        "0.bn1.bias", "0.bn1.num_batches_tracked", "0.bn1.running_mean", "0.bn1.running_var",
        "0.bn1.weight", "0.conv1.weight", "0.shortcut.0.weight", "0.shortcut.1.bias",
        "0.shortcut.1.num_batches_tracked", "0.shortcut.1.running_mean",
        "0.shortcut.1.running_var", "0.shortcut.1.weight",
      }, sorted_keys(net:state_dict()))
      assert.are.equal("int64", net:state_dict()["0.bn1.num_batches_tracked"]:dtype())
    end)

    it("round-trips into a fresh module", function()
      local a, b = nn.Sequential(Block(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2)),
        nn.Sequential(Block(2), nn.Flatten(), nn.Linear(2 * 3 * 3, 2))
      b:load_state_dict(a:state_dict())
      for key, value in pairs(a:state_dict()) do
        assert.is_true(value == b:state_dict()[key], key)
      end
      a:eval()
      b:eval()
      local x = distill.randn{2, 2, 3, 3}
      assert.is_true(a(x) == b(x))
    end)

    it("lists missing, unexpected and mis-shaped keys and copies nothing", function()
      local lin = nn.Linear(2, 3)
      local before = lin.weight:clone()
      local ok, err = pcall(lin.load_state_dict, lin, {
        weight = distill.zeros{3, 3}, extra = distill.zeros{1},
      })
      assert.is_false(ok)
      assert.truthy(err:find("shape mismatch: weight (checkpoint {3, 3}, model {3, 2})", 1, true))
      assert.truthy(err:find("missing keys: bias", 1, true))
      assert.truthy(err:find("unexpected keys: extra", 1, true))
      assert.is_true(before == lin.weight)
    end)

    it("ignores missing and unexpected keys when not strict", function()
      local lin = nn.Linear(2, 3)
      local result = lin:load_state_dict({ bias = distill.ones{3}, other = distill.zeros{1} }, false)
      assert.are.same({ "weight" }, result.missing)
      assert.are.same({ "other" }, result.unexpected)
      assert.are.same({ 1, 1, 1 }, lin.bias:totable())
    end)
  end)

  describe("initialisation", function()
    it("follows PyTorch's default for Linear (uniform, bound 1/sqrt(fan_in))", function()
      local lin = nn.Linear(400, 300)
      local bound = 1 / math.sqrt(400)
      assert.is_true(lin.weight:max():item() <= bound)
      assert.is_true(lin.weight:min():item() >= -bound)
      local _, std = mean_and_std(lin.weight)
      assert.is_true(math.abs(std - bound / math.sqrt(3)) < 0.02 * bound)
    end)

    it("kaiming_normal_ with fan_out matches its formula", function()
      local w = distill.empty{64, 32, 3, 3}
      nn.init.kaiming_normal_(w, { mode = "fan_out", nonlinearity = "relu" })
      local mean, std = mean_and_std(w)
      local expected = math.sqrt(2) / math.sqrt(64 * 9)
      assert.is_true(math.abs(mean) < 0.01 * expected * 10)
      assert.is_true(math.abs(std - expected) < 0.02 * expected)
    end)

    it("xavier_uniform_, constant_ and gains", function()
      local w = distill.empty{20, 30}
      nn.init.xavier_uniform_(w)
      local bound = math.sqrt(6 / 50)
      assert.is_true(w:max():item() <= bound and w:min():item() >= -bound)
      nn.init.constant_(w, 0.5)
      assert.are.equal(0.5, w:mean():item())
      assert.are.equal(math.sqrt(2), nn.init.calculate_gain("relu"))
      assert.has_error(function() nn.init.calculate_gain("swish") end)
    end)

    it("BatchNorm starts at gamma 1, beta 0, mean 0, var 1", function()
      local bn = nn.BatchNorm2d(3)
      assert.are.same({ 1, 1, 1 }, bn.weight:totable())
      assert.are.same({ 0, 0, 0 }, bn.bias:totable())
      assert.are.same({ 1, 1, 1 }, bn.running_var:totable())
    end)
  end)

  describe("layers", function()
    it("Linear computes x W^T + b and its gradients", function()
      local lin = nn.Linear(3, 2)
      distill.no_grad(function()
        lin.weight:copy_(distill.tensor{{1, 2, 3}, {4, 5, 6}})
        lin.bias:copy_(distill.tensor{0.5, -1})
      end)
      local y = lin(distill.tensor{{1, 0, -1}}:float())
      assert.are.same({ { -1.5, -3 } }, y:totable())
      local x = distill.randn{4, 3}
      x.requires_grad = true
      assert.is_true(gradcheck.gradcheck(function(a, w, b) return distill.F.linear(a, w, b) end,
        { x, lin.weight, lin.bias }))
    end)

    it("Conv2d keeps PyTorch's output size", function()
      local conv = nn.Conv2d(3, 5, 3, { stride = 2, padding = 1 })
      assert.are.same({ 2, 5, 4, 4 }, conv(distill.randn{2, 3, 8, 8}):shape())
      local grouped = nn.Conv2d(4, 8, 3, { groups = 2, padding = 1, bias = false })
      assert.are.same({ 8, 2, 3, 3 }, grouped.weight:shape())
      assert.has_error(function() nn.Conv2d(3, 4, 3, { groups = 2 }) end)
      assert.has_error(function() nn.Conv2d(3, 4, 3, { strides = 2 }) end)
    end)

    it("BatchNorm2d updates running stats in train mode only", function()
      local bn = nn.BatchNorm2d(2)
      local x = distill.randn{4, 2, 3, 3} * 3 + 1
      bn(x)
      assert.are.equal(1, bn.num_batches_tracked:item())
      local mean_after = bn.running_mean:clone()
      assert.is_false(mean_after == distill.zeros{2})
      bn:eval()
      bn(x)
      assert.is_true(mean_after == bn.running_mean)
      assert.are.equal(1, bn.num_batches_tracked:item())
    end)

    it("BatchNorm2d with momentum = false keeps a cumulative average", function()
      local bn = nn.BatchNorm2d(1, { momentum = false })
      bn(distill.full({2, 1, 1, 1}, 1.0))
      bn(distill.full({2, 1, 1, 1}, 3.0))
      assert.is_true(math.abs(bn.running_mean[1] - 2) < 1e-6)
    end)

    it("rejects inputs of the wrong rank", function()
      local ok, err = pcall(function() nn.BatchNorm2d(2)(distill.randn{2, 2}) end)
      assert.is_false(ok)
      assert.truthy(err:find("nn.BatchNorm2d: expected a 4-d input, got 2 dims", 1, true))
    end)

    it("Dropout is the identity in eval mode", function()
      local drop = nn.Dropout(0.5)
      local x = distill.randn{10}
      drop:eval()
      assert.is_true(drop(x) == x)
      drop:train()
      local y = drop(distill.ones{1000})
      local kept = y:gt(0):float():sum():item()
      assert.is_true(kept > 400 and kept < 600)
    end)

    it("pooling, flatten and activations have the right shapes", function()
      local x = distill.randn{2, 3, 8, 8}
      assert.are.same({ 2, 3, 4, 4 }, nn.MaxPool2d(2)(x):shape())
      assert.are.same({ 2, 3, 3, 3 }, nn.AvgPool2d(3, { stride = 2 })(x):shape())
      assert.are.same({ 2, 3, 1, 1 }, nn.AdaptiveAvgPool2d(1)(x):shape())
      assert.are.same({ 2, 192 }, nn.Flatten()(x):shape())
      assert.are.same({ 2, 3, 8, 8 }, nn.ReLU6()(x):shape())
      assert.are.equal(0, nn.ReLU()(x):min():item())
    end)
  end)
end)
