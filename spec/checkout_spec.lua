-- A source checkout serves distill.models.* and distill.data.* from its
-- top-level models/ and data/ folders (lua/distill holds no links to them).
local checkout = require "distill.checkout"
local h = require "support.helpers"

local sh_quote, run = h.sh_quote, h.sh

local function count_searchers()
  local n = 0
  for _ in ipairs(package.searchers) do
    n = n + 1
  end
  return n
end

describe("distill.checkout", function()
  it("finds the checkout and maps module names onto models/ and data/", function()
    -- absolute, so that paths built from it do not depend on the directory
    local root = require("lfs").currentdir()
    assert.are.equal(root, checkout.root)
    assert.are.equal(root .. "/models/resnet.lua", checkout.search("distill.models.resnet"))
    assert.are.equal(root .. "/models/init.lua", checkout.search("distill.models"))
    assert.are.equal(root .. "/data/cifar.lua", checkout.search("distill.data.cifar"))
    assert.are.equal(root .. "/data/init.lua", checkout.search("distill.data"))
    assert.is_nil(checkout.search("distill.datasets"))
    assert.is_nil(checkout.search("distill.models_extra"))
    assert.is_nil(checkout.search("distill.nn"))
    local missing, why = checkout.search("distill.models.nope")
    assert.is_nil(missing)
    assert.truthy(why:find("no file '" .. root .. "/models/nope.lua'", 1, true))
  end)

  it("loads the top-level files under their distill.* names", function()
    local cifar = require "distill.data.cifar"
    assert.are.equal("airplane", cifar.cifar10_classes[1])
    assert.is_function(require("distill.models").create)
  end)

  it("adds its searcher once", function()
    local before = count_searchers()
    package.loaded["distill.checkout"] = nil
    local again = require "distill.checkout"
    assert.are.equal(before, count_searchers())
    assert.are.equal(require("lfs").currentdir(), again.root)
  end)

  it("leaves no links to models/ or data/ in lua/distill", function()
    for _, name in ipairs { "models", "data" } do
      local f = io.open("lua/distill/" .. name, "r")
      if f then
        f:close()
      end
      assert.is_nil(f, "lua/distill/" .. name .. " exists")
    end
  end)

  it("says the checkout's git commit and whether tracked files changed, nil outside git", function()
    local head, ok = run("git rev-parse HEAD")
    assert.is_true(ok, head)
    local status = run("git status --porcelain --untracked-files=no")
    local state = checkout.git_state()
    assert.are.equal(head:match("%x+"), state.commit)
    assert.are.equal(status:match("%S") ~= nil, state.dirty)
    assert.are.same(state, checkout.git_state(checkout.root))
    -- a folder inside the checkout is not the top of a work tree; a plain folder has no commit
    assert.is_nil(checkout.git_state(checkout.root .. "/lua"))
    assert.is_nil(checkout.git_state(h.tmpdir()))
    -- without git on the PATH (sh is found by its absolute path)
    local out, without_git = run("PATH=/nonexistent /usr/bin/lua5.4 -e " .. sh_quote(
      "package.path = './lua/?.lua;' .. package.path; "
      .. "print(require('distill.checkout').git_state())"))
    assert.is_true(without_git, out)
    assert.are.equal("nil", out:match("^%s*(.-)%s*$"))
    h.fails("distill.checkout.git_state: argument #1: expected a directory (a string), got number",
      checkout.git_state, 3)
  end)

  it("works for a plain lua5.4 with lua/ on its path, and for scripts/distill", function()
    local build = os.getenv("DISTILL_BUILD") or "./build"
    local out, ok = run("lua5.4 -e " .. sh_quote(
      "package.path = './lua/?.lua;./lua/?/init.lua;' .. package.path; "
      .. "package.cpath = '" .. build .. "/?.so;' .. package.cpath; "
      .. "local distill = require 'distill'; "
      .. "print(require('distill.data.fashion_mnist').classes[2], #distill.models.list())"))
    assert.is_true(ok, out)
    assert.are.equal("Trouser\t26", out:match("^%s*(.-)%s*$"))
    local script = os.tmpname() .. ".lua"
    local f = assert(io.open(script, "w"))
    f:write('print(require("distill.models.fmnist").fmnist_resnet_s{num_classes = 10}:num_parameters())\n')
    f:close()
    out, ok = run((os.getenv("DISTILL_BUILD") and ("DISTILL_BUILD=" .. sh_quote(build) .. " ") or "")
      .. "lua5.4 scripts/distill " .. sh_quote(script))
    os.remove(script)
    assert.is_true(ok, out)
    assert.are.equal("19810", out:match("^%s*(.-)%s*$"))
  end)
end)
