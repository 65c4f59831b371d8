-- `luarocks make` installs a working module and the distill command into a
-- fresh tree; the module then loads from any directory.
-- (The rockspec's luafilesystem dependency is not registered with luarocks
-- on a Debian machine that has lua-filesystem from apt, hence
-- --deps-mode=none.)

local h = require "support.helpers"

local sh_quote, run = h.sh_quote, h.sh

describe("luarocks make", function()
  local root, tree

  setup(function()
    root = assert(io.popen("pwd")):read("l")
    tree = assert(io.popen("mktemp -d /tmp/distill-install-XXXXXX")):read("l")
    assert(tree and tree:match("^/tmp/distill%-install%-"), "mktemp failed")
  end)

  teardown(function()
    if tree and tree:match("^/tmp/distill%-install%-") then
      os.execute("rm -rf " .. sh_quote(tree))
    end
  end)

  local function in_tree(cmd)
    return run("cd /tmp && eval \"$(luarocks --lua-version 5.4 --tree " .. sh_quote(tree) ..
      " path)\" && " .. cmd)
  end

  it("installs into a fresh tree", function()
    -- built without MPI (DISTILL_MPI=OFF), the variant for machines that have
    -- none; the default build in build/ has it (spec/dist_spec.lua)
    local out, ok = run("cd " .. sh_quote(root) .. " && DISTILL_MPI=OFF luarocks --lua-version 5.4 make --tree " ..
      sh_quote(tree) .. " --deps-mode=none distill-scm-1.rockspec")
    assert.is_true(ok, "luarocks make failed:\n" .. out)
    assert.truthy(out:find("is now installed", 1, true), out)
  end)

  it("require 'distill' works from another directory", function()
    local out, ok = in_tree([[lua5.4 -e 'print(require("distill").randn{2,3})']])
    assert.is_true(ok, out)
    assert.truthy(out:find("float32", 1, true), out)
    assert.truthy(out:find("2", 1, true) and out:find("3", 1, true), out)
    out, ok = in_tree([[lua5.4 -e 'local d = require("distill")
      local x = d.randn{2,3}
      assert(x:numel() == 6 and x:dim() == 2 and x:dtype() == "float32")
      assert(package.searchpath("distill.core", package.cpath):find("/lib/lua/5.4/", 1, true))
      print(d.mm(d.ones{2,3}, d.ones{3,4}):sum():item())']])
    assert.is_true(ok, out)
    assert.are.equal("24.0", out:match("^%s*(.-)%s*$"))
  end)

  it("a build without MPI runs alone and says why it cannot run distributed", function()
    local out, ok = in_tree([[lua5.4 -e 'local dist = require("distill.dist")
      local available, why = dist.available()
      assert(available == false, "MPI found")
      assert(dist.init() == false and dist.size() == 1 and dist.rank() == 1)
      local t = require("distill").ones{3}
      assert(dist.all_reduce(t) == t and t:sum():item() == 3)
      print(why)']])
    assert.is_true(ok, out)
    assert.truthy(out:find("has no MPI", 1, true), out)
    -- started by a launcher, it refuses instead of running as unrelated copies
    out, ok = in_tree([[OMPI_COMM_WORLD_SIZE=2 lua5.4 -e 'require("distill.dist").init()']])
    assert.is_false(ok, out)
    assert.truthy(out:find("distill.dist.init: started by an MPI launcher, but this build of distill has no MPI",
      1, true), out)
  end)

  it("installs distill.models and distill.data beside the library", function()
    local out, ok = in_tree([[lua5.4 -e 'local d = require("distill")
      assert(not package.loaded["distill.checkout"].root, "no checkout outside one")
      assert(package.searchpath("distill.models.resnet", package.path):find("/share/lua/5.4/distill/models/", 1, true))
      assert(package.searchpath("distill.data.cifar", package.path):find("/share/lua/5.4/distill/data/", 1, true))
      print(#d.models.list(), require("distill.data.cifar").cifar10_classes[1])']])
    assert.is_true(ok, out)
    assert.are.equal("26\tairplane", out:match("^%s*(.-)%s*$"))
  end)

  it("ships the configs and the example teacher, usable from any directory", function()
    local bin = sh_quote(tree .. "/bin/distill")
    local out, ok = in_tree(bin .. " configs")
    assert.is_true(ok, out)
    assert.truthy(out:find("cifar100_resnet56_resnet20", 1, true), out)
    assert.truthy(out:find("fmnist_student_kd", 1, true), out)
    local dir = out:match("shipped configs %(([^)]+)%)")
    assert.truthy(dir and dir:find(tree, 1, true) == 1, out)
    -- the Fashion-MNIST configs name the installed teacher, not a checkout path
    out, ok = in_tree("lua5.4 -e 'local c = require(\"distill.config\").load(\"" .. dir
      .. "/fmnist_student_kd.lua\"); print(c.teacher.checkpoint)'")
    assert.is_true(ok, out)
    local teacher = out:match("^%s*(.-)%s*$")
    assert.truthy(teacher:find(tree, 1, true) == 1, teacher)
    if io.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz") then
      out, ok = in_tree(bin .. " eval " .. sh_quote(teacher) .. " --limit 200")
      assert.is_true(ok, out)
      assert.truthy(out:find("fashion_mnist/test (200 images)", 1, true), out)
    end
  end)

  it("installs the distill command", function()
    -- a tree other than the default one needs `luarocks path`, as any rock does
    local out, ok = in_tree(sh_quote(tree .. "/bin/distill") .. " --help")
    assert.is_true(ok, out)
    assert.truthy(out:find("usage: distill", 1, true), out)
    local script = tree .. "/hello.lua"
    local f = assert(io.open(script, "w"))
    f:write('local d = require "distill"\nprint(arg[1], d.eye(2):sum():item())\n')
    f:close()
    out, ok = in_tree(sh_quote(tree .. "/bin/distill") .. " " .. sh_quote(script) .. " hi")
    assert.is_true(ok, out)
    assert.are.equal("hi\t2.0", out:match("^%s*(.-)%s*$"))
  end)

  it("runs a sweep whose runs are children of the installed command", function()
    local f = assert(io.open(tree .. "/tiny.lua", "w"))
    f:write([[return { name = "tiny", epochs = 1, batch_size = 32, workers = 1, plot = false,
      student = { model = { family = "fmnist", name = "FashionResNet", widths = { 4, 4, 8, 8 } } },
      data = { dataset = "synthetic", num_classes = 10, synthetic_size = 64, synthetic_test_size = 32,
               synthetic_shape = { 1, 12, 12 } } }]])
    f:close()
    f = assert(io.open(tree .. "/grid.lua", "w"))
    f:write('return { configs = { "tiny.lua" }, seeds = { 1, 2 } }')
    f:close()
    local out, ok = in_tree("cd " .. sh_quote(tree) .. " && OMP_WAIT_POLICY=passive "
      .. sh_quote(tree .. "/bin/distill") .. " sweep grid.lua --jobs 2")
    assert.is_true(ok, out)
    assert.truthy(out:find("sweep grid: 2 done, 0 failed", 1, true), out)
    local log = assert(io.open(tree .. "/runs/grid/seed2/console.log")):read("a")
    local child = tree .. "/lib/luarocks/rocks-5.4/distill/scm-1/bin/distill train tiny.lua"
    assert.truthy(log:find(child, 1, true), log)
    -- a shipped sweep by name: its scripts/configs/... paths are the installed configs
    out, ok = in_tree(sh_quote(tree .. "/bin/distill") .. " sweep fmnist_table3 --dry-run --root "
      .. sh_quote(tree .. "/study") .. " --only seed=1 --only method=kd")
    assert.is_true(ok, out)
    assert.truthy(out:find("sweep fmnist_table3: 1 run: 1 new", 1, true), out)
    local config = out:match("/bin/distill distill (%S+) ")
    assert.truthy(config and config:find(tree, 1, true) == 1
      and config:find("/distill/share/configs/fmnist_study.lua$"), out)
    assert.truthy(out:find("--set run_dir=" .. tree .. "/study/fmnist_table3/kd-seed1 ", 1, true), out)
    assert.is_nil(out:find("blocked", 1, true), "the installed teacher is found: " .. out)
  end)
end)
