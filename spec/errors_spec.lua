-- How the distill command shows errors: `distill: <message>` without the
-- file:line of distill's own Lua files (a user's script keeps its own),
-- the traceback with --debug, exit status 130 after a Ctrl-C.
local errors = require "distill.errors"
local cli = require "distill.cli"
local log = require "distill.log"
local h = require "support.helpers"

local LOG_FILE = package.searchpath("distill.log", package.path)

-- Runs cli.main(args) in this process; returns code, stdout, stderr.
local function run_cli(args)
  local out_path, err_path = os.tmpname(), os.tmpname()
  local out, err = assert(io.open(out_path, "w")), assert(io.open(err_path, "w"))
  local code = cli.main(args, { out = out, err = err })
  out:close()
  err:close()
  local stdout, stderr = h.read(out_path), h.read(err_path)
  os.remove(out_path)
  os.remove(err_path)
  return code, stdout, stderr
end

local function script(text)
  local path = os.tmpname() .. ".lua"
  h.write(path, text)
  return path
end

describe("errors.display", function()
  it("drops the position of an error raised in distill's own files", function()
    local ok, err = pcall(log.format_duration, "soon")
    assert.is_false(ok)
    assert.truthy(err:find("log.lua:%d+:"), err)
    local shown = errors.display(err)
    assert.is_nil(shown:find("%.lua:%d+:"), shown)
    assert.truthy(shown:find("attempt to compare", 1, true), shown)
  end)

  it("recognises distill's files when Lua shortened their names with ...", function()
    local tail = LOG_FILE:sub(-30)
    assert.are.equal("boom", errors.display("..." .. tail .. ":12: boom"))
    assert.is_true(errors.is_distill_file("..." .. tail))
    assert.is_false(errors.is_distill_file(".../home/someone/experiments/train_more.lua"))
  end)

  it("keeps the positions of other files (a user's script, a config)", function()
    assert.are.equal("my_script.lua:3: boom", errors.display("my_script.lua:3: boom"))
    assert.are.equal("/tmp/configs/x.lua:7: bad value", errors.display("/tmp/configs/x.lua:7: bad value"))
    assert.are.equal(LOG_FILE:gsub("log%.lua$", "") .. "but/not/a_lua_file: x",
      errors.display(LOG_FILE:gsub("log%.lua$", "") .. "but/not/a_lua_file: x"))
  end)

  it("shows error objects through __tostring, and says what other values are", function()
    local obj = setmetatable({}, { __tostring = function() return "an object" end })
    assert.are.equal("an object", errors.display(obj))
    assert.are.equal("(error object is a table value)", errors.display({}))
    assert.are.equal("nil", errors.display(nil))
  end)

  it("capture() keeps the first traceback of an error that is raised again", function()
    local function inner() error("deep problem") end
    local ok, err = xpcall(inner, errors.capture)
    assert.is_false(ok)
    local ok2, err2 = xpcall(function() error(err, 0) end, errors.capture)
    assert.is_false(ok2)
    local tb = errors.traceback_of(err2)
    assert.truthy(tb:find("stack traceback", 1, true))
    assert.truthy(tb:find("errors_spec.lua:" .. debug.getinfo(inner, "S").linedefined, 1, true), tb)
    assert.is_nil(errors.traceback_of("another error"))
  end)

  it("names the function on bad arguments", function()
    h.fails("errors.is_distill_file: argument #1: expected a file name, got number",
      errors.is_distill_file, 3)
  end)
end)

describe("distill command errors", function()
  it("prints `distill: message` without distill's positions, exit status 1", function()
    local path = script('require("distill.log").format_duration("soon")\n')
    local code, _, stderr = run_cli({ path })
    os.remove(path)
    assert.are.equal(1, code)
    assert.truthy(stderr:match("^distill: attempt to compare"), stderr)
    assert.is_nil(stderr:find("%.lua:%d+:"), stderr)
    assert.is_nil(stderr:find("traceback", 1, true), stderr)
  end)

  it("keeps the position of an error in the user's script", function()
    local path = script('local x = 1\nerror("my own mistake")\n')
    local code, _, stderr = run_cli({ path })
    os.remove(path)
    assert.are.equal(1, code)
    assert.are.equal(("distill: %s:2: my own mistake\n"):format(path), stderr)
  end)

  it("--debug before a script prints the traceback; after it, it is the script's argument", function()
    local path = script('if arg[1] == "--debug" then print("mine") end\n'
      .. 'local function deeper()\n  require("distill.log").format_duration("soon")\nend\ndeeper()\n')
    local code, _, stderr = run_cli({ "--debug", path })
    assert.are.equal(1, code)
    assert.truthy(stderr:find("stack traceback", 1, true), stderr)
    assert.truthy(stderr:find("log.lua:%d+:"), stderr)
    assert.truthy(stderr:find("deeper", 1, true), stderr)
    assert.truthy(stderr:find("\ndistill: attempt to compare"), stderr)
    local code2, _, stderr2 = run_cli({ path, "--debug" })
    assert.are.equal(1, code2)
    assert.is_nil(stderr2:find("stack traceback", 1, true), stderr2)
    os.remove(path)
  end)

  it("--debug goes before or after a subcommand", function()
    for _, args in ipairs { { "eval", "/nonexistent/x.safetensors", "--debug" },
                            { "--debug", "eval", "/nonexistent/x.safetensors" } } do
      local code, _, stderr = run_cli(args)
      assert.are.equal(1, code)
      assert.truthy(stderr:find("stack traceback", 1, true), stderr)
      assert.truthy(stderr:find("\ndistill: checkpoint.load", 1, true), stderr)
    end
    local code, _, stderr = run_cli({ "eval", "/nonexistent/x.safetensors" })
    assert.are.equal(1, code)
    assert.truthy(stderr:match("^distill: checkpoint.load"), stderr)
    assert.is_nil(stderr:find("traceback", 1, true), stderr)
  end)

  it("a Ctrl-C in a script ends it with `distill: interrupted`, exit status 130", function()
    local path = script([[
local process = require("distill.core").process
process.spawn({ "kill", "-INT", tostring(process.getpid()) }, { output = "/dev/null" })
local t0 = require("distill").wallclock()
while require("distill").wallclock() - t0 < 30 do end
print("not interrupted")
]])
    local code, text = h.run_distill({ path }, 60)
    os.remove(path)
    assert.are.equal(130, code, text)
    assert.are.equal("distill: interrupted\n", text)
  end)
end)
