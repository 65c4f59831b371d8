-- The distill command: REPL over a pipe, running scripts, usage errors.
local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function env_prefix()
  local build = os.getenv("DISTILL_BUILD")
  return build and ("DISTILL_BUILD=" .. sh_quote(build) .. " ") or ""
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- Runs scripts/distill with `args`, feeding `input` on stdin. Returns
-- stdout, stderr and the exit status.
local function distill_cmd(args, input)
  local base = os.tmpname()
  write_file(base .. ".in", input or "")
  local cmd = string.format("%slua5.4 scripts/distill %s < %s > %s 2> %s; echo $?", env_prefix(), args,
    sh_quote(base .. ".in"), sh_quote(base .. ".out"), sh_quote(base .. ".err"))
  local p = assert(io.popen(cmd))
  local status = tonumber(p:read("a"):match("(%d+)%s*$"))
  p:close()
  local function slurp(path)
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    os.remove(path)
    return text
  end
  local out, err = slurp(base .. ".out"), slurp(base .. ".err")
  os.remove(base .. ".in")
  os.remove(base)
  return out, err, status
end

local function lines(text)
  local t = {}
  for line in text:gmatch("([^\n]*)\n") do t[#t + 1] = line end
  return t
end

describe("distill REPL over a pipe", function()
  it("prints expression results without '='", function()
    local out, err, status = distill_cmd("", "1 + 2\n'a', 4\ndistill.arange(6):view{2,3}:sum():item()\n")
    assert.are.equal(0, status)
    assert.are.equal("", err)
    assert.are.same({ "3", "a\t4", "15" }, lines(out))
  end)

  it("runs statements and keeps globals between lines", function()
    local out = distill_cmd("repl", "x = distill.ones{2, 2}\ny = x:numel()\ny * 10\nprint('hi')\n")
    assert.are.same({ "40", "hi" }, lines(out))
  end)

  it("prints tensors with tostring", function()
    local out = distill_cmd("", "distill.tensor{1, 2, 3}\n")
    assert.truthy(out:find("int64", 1, true), out)
    assert.truthy(out:find("3", 1, true), out)
  end)

  it("continues incomplete chunks across lines", function()
    local out, err = distill_cmd("", table.concat({
      "function double(t)",
      "  local r = {}",
      "  for i, v in ipairs(t) do",
      "    r[i] = v * 2",
      "  end",
      "  return r",
      "end",
      "double({1, 2, 3})[3]",
      "local s = [[a",
      "b]]",
      "({",
      "  1,",
      "  2})[2]",
    }, "\n") .. "\n")
    assert.are.equal("", err)
    assert.are.same({ "6", "2" }, lines(out))
  end)

  it("reports errors and keeps going", function()
    local out, err, status = distill_cmd("", table.concat({
      "error('boom')",
      "distill.zeros{-1}",
      "1 +* 2",
      "nil .. 'x'",
      "'still alive'",
    }, "\n") .. "\n")
    assert.are.equal(0, status)
    assert.are.same({ "still alive" }, lines(out))
    assert.truthy(err:find("boom", 1, true), err)
    assert.truthy(err:find("distill.zeros:", 1, true), err)
    assert.truthy(err:find("unexpected symbol", 1, true), err)
    assert.truthy(err:find("concatenate", 1, true), err)
  end)

  it("reports a chunk left unfinished at end of input", function()
    local out, err, status = distill_cmd("", "function f()\n  return 1\n")
    assert.are.equal(0, status)
    assert.are.equal("", out)
    assert.truthy(err:find("<eof>", 1, true), err)
  end)

  it("exits with os.exit and at end of input", function()
    local out, _, status = distill_cmd("", "print(1)\nos.exit(3)\nprint(2)\n")
    assert.are.equal(3, status)
    assert.are.same({ "1" }, lines(out))
    local _, _, st = distill_cmd("", "")
    assert.are.equal(0, st)
  end)

  it("offers the shortcuts that load", function()
    local out = distill_cmd("", "type(distill)\ntype(distill.randn)\n")
    assert.are.same({ "table", "function" }, lines(out))
  end)
end)

describe("distill.repl module", function()
  it("evaluates from any file handle", function()
    local repl = require "distill.repl"
    local input = io.tmpfile()
    input:write("2 ^ 10\nz = 1\nz + 1\nerror('x')\n")
    input:seek("set", 0)
    local out, errs = io.tmpfile(), io.tmpfile()
    repl.run { input = input, output = out, errors = errs, prompt = false }
    out:seek("set", 0)
    errs:seek("set", 0)
    assert.are.same({ "1024.0", "2" }, lines(out:read("a")))
    assert.truthy(errs:read("a"):find("x", 1, true))
  end)

  it("compile tells incomplete from broken input", function()
    local repl = require "distill.repl"
    local fn, _, incomplete = repl.compile("for i = 1, 2 do", {})
    assert.is_nil(fn)
    assert.is_true(incomplete)
    fn, _, incomplete = repl.compile("1 +* 2", {})
    assert.is_nil(fn)
    assert.is_false(incomplete)
    assert.are.equal(3, repl.compile("1 + 2", {})())
    assert.are.equal(5, repl.compile("= 5", {})())
  end)
end)

describe("distill command", function()
  it("runs FILE.lua with its arguments", function()
    local script = os.tmpname() .. ".lua"
    write_file(script, [[
local distill = require "distill"
print(#arg, arg[1], arg[2], select("#", ...))
print(arg[0]:match("%.lua$") ~= nil, distill.eye(3):sum():item())
]])
    local out, err, status = distill_cmd(sh_quote(script) .. " a 'b c'")
    os.remove(script)
    assert.are.equal(0, status, err)
    assert.are.same({ "2\ta\tb c\t2", "true\t3.0" }, lines(out))
  end)

  it("exits with status 1 when the script fails", function()
    local script = os.tmpname() .. ".lua"
    write_file(script, "error('script failed on purpose')\n")
    local _, err, status = distill_cmd(sh_quote(script))
    os.remove(script)
    assert.are.equal(1, status)
    assert.truthy(err:find("script failed on purpose", 1, true), err)
  end)

  it("unknown commands give status 2 and the usage", function()
    local out, err, status = distill_cmd("frobnicate")
    assert.are.equal(2, status)
    assert.are.equal("", out)
    assert.truthy(err:find("unknown command 'frobnicate'", 1, true), err)
    assert.truthy(err:find("usage: distill", 1, true), err)
  end)

  it("--help prints the usage", function()
    local out, _, status = distill_cmd("--help")
    assert.are.equal(0, status)
    assert.truthy(out:find("usage: distill", 1, true))
    assert.truthy(out:find("FILE.lua", 1, true))
  end)
end)

describe("distill.repl line editing and completion", function()
  local repl = require "distill.repl"
  local distill = require "distill"

  local function feed(keys)
    local i = 0
    return function()
      i = i + 1
      if i > #keys then
        return nil
      end
      return keys:sub(i, i)
    end
  end

  local function editor(keys, opts)
    opts = opts or {}
    local written = {}
    local env = opts.env or repl.environment()
    return repl.editor{
      read_byte = feed(keys),
      write = function(t) written[#written + 1] = t end,
      history = opts.history or {},
      complete = function(text) return repl.complete(env, text) end,
    }, written
  end

  it("completes globals, fields and methods through metatables", function()
    local env = repl.environment()
    env.x = distill.zeros{ 2, 3 }
    local list = repl.complete(env, "distill.ran")
    assert.truthy(#list >= 3)
    for _, name in ipairs { "distill.rand", "distill.randint", "distill.randn" } do
      local found = false
      for _, c in ipairs(list) do
        found = found or c == name
      end
      assert.is_true(found, name)
    end
    list = repl.complete(env, "print(x:vie")
    assert.are.equal("x:view", list[1])
    for _, c in ipairs(list) do
      assert.truthy(c:find("^x:view"), c)
    end
    list = repl.complete(env, "ipai")
    assert.are.same({ "ipairs" }, list)
    list = repl.complete(env, "nn.Conv")
    assert.are.same({ "nn.Conv2d", "nn.ConvTranspose2d" }, list)
    assert.are.same({}, (repl.complete(env, "nosuch.thing")))
  end)

  it("edits a line: insert, cursor moves, backspace, delete, Tab", function()
    local ed = editor("ab\27[D\27[DX\27[F\127c\r")
    assert.are.equal("Xac", ed:read_line("> "))
    ed = editor("distill.rand\9\9n\r")
    assert.are.equal("distill.randn", ed:read_line("> "))
    ed = editor("hello\1\27[3~J\r")        -- Home, Delete, insert
    assert.are.equal("Jello", ed:read_line("> "))
    ed = editor("abc def\23\r")           -- Ctrl-W
    assert.are.equal("abc ", ed:read_line("> "))
    ed = editor("\4")
    assert.is_nil(ed:read_line("> "))
  end)

  it("walks the history with up and down", function()
    local ed = editor("\27[A\27[A\r", { history = { "first", "second" } })
    assert.are.equal("first", ed:read_line("> "))
    ed = editor("new\27[A\27[B\r", { history = { "first" } })
    assert.are.equal("new", ed:read_line("> "))
  end)

  it("keeps history in a file across sessions", function()
    local path = os.tmpname()
    local f = io.open(path, "w")
    f:write("1 + 1\nx = 2\n")
    f:close()
    assert.are.same({ "1 + 1", "x = 2" }, repl.load_history(path))
    os.remove(path)
    assert.are.same({}, repl.load_history(path))
  end)

  it("prints tables with depth and length limits, not table: 0x...", function()
    assert.are.equal('{1, 2, {a = "s", b = {1.5}}}', repl.format_value({ 1, 2, { a = "s", b = { 1.5 } } }))
    local big = {}
    for i = 1, 100 do big[i] = i end
    local text = repl.format_value(big)
    assert.truthy(text:find("... 80 more}", 1, true), text)
    assert.truthy(repl.format_value({ { { { { 1 } } } } }):find("{... 1 entry}", 1, true))
    local cycle = {}
    cycle.me = cycle
    assert.are.equal("{me = <cycle>}", repl.format_value(cycle))
    local t = repl.format_value({ x = distill.ones{ 100, 20 } })
    assert.truthy(t:find("{x = tensor{100x20, float32}", 1, true), t)
    assert.are.equal("plain", repl.format_value("plain"))
  end)

  it("lists at most COMPLETION_LIMIT completions, says how many more, all on a second Tab", function()
    local env = {}
    for i = 1, 70 do env[("item%02d"):format(i)] = i end
    local ed, written = editor("item\9\r", { env = env })
    ed:read_line("> ")
    local text = table.concat(written)
    assert.truthy(text:find("item60", 1, true), text)
    assert.is_nil(text:find("item61", 1, true), text)
    assert.truthy(text:find("... and 10 more (Tab again lists all)", 1, true), text)
    ed, written = editor("item\9\9\r", { env = env })
    ed:read_line("> ")
    text = table.concat(written)
    assert.truthy(text:find("item70", 1, true), text)
  end)

  it("recalls a multi-line chunk as one history entry, kept so in the history file", function()
    local path = os.tmpname()
    local out_path = os.tmpname()
    local out = assert(io.open(out_path, "w"))
    -- edit mode reads keys byte by byte: feed the chunk's lines through an editor
    local env = repl.environment()
    local keys = "for i = 1, 2 do\r  n = (n or 0) + i\rend\r\27[A\r"
    local i = 0
    local keyboard = { read = function()
      i = i + 1
      return i <= #keys and keys:sub(i, i) or nil
    end }
    repl.run{ input = keyboard, output = out, errors = out, prompt = true, edit = true, env = env,
      history = path }
    out:close()
    local history = repl.load_history(path)
    assert.are.same({ "for i = 1, 2 do\n  n = (n or 0) + i\nend" }, history)
    local f = assert(io.open(path))
    local raw = f:read("a")
    f:close()
    assert.are.equal(1, select(2, raw:gsub("\n", "")), raw)   -- one line in the file
    -- the recalled chunk ran again, as a whole
    assert.are.equal(6, env.n, io.open(out_path):read("a"))
    os.remove(path)
    os.remove(out_path)
  end)

  it("help(x) and ?name show the documentation of functions, classes and modules", function()
    local env = repl.environment()
    assert.truthy(repl.help_text(env.F.conv2d):find("2-d convolution", 1, true))
    assert.truthy(repl.help_text(env.nn.Conv2d):find("Conv2d(in_channels, out_channels", 1, true))
    assert.truthy(repl.help_text(require "distill.checkpoint"):find("safetensors", 1, true))
    assert.truthy(repl.help_text(require("distill.log").read_metrics):find("metrics.jsonl", 1, true))
    assert.truthy(repl.help_text(42):find("no documentation", 1, true))
    local out = distill_cmd("", "?F.cross_entropy\nhelp(nn.Linear)\n?nosuch.name\n")
    assert.truthy(out:find("cross_entropy(", 1, true), out)
    assert.truthy(out:find("Linear(in_features", 1, true), out)
    assert.truthy(out:find("nosuch.name: no such name", 1, true), out)
  end)

  it("prints large tensors compactly and small ones in full", function()
    local t = distill.ones{ 100, 20 }
    local text = repl.format_value(t)
    assert.truthy(text:find("tensor{100x20, float32}", 1, true), text)
    assert.truthy(text:find("mean=1", 1, true), text)
    assert.truthy(#text < 200)
    assert.are.equal(tostring(distill.ones{ 2 }), repl.format_value(distill.ones{ 2 }))
  end)
end)

describe("distill REPL on a terminal", function()
  it("Ctrl-C interrupts each running command and returns to the prompt; at the prompt it drops the line; Ctrl-D exits", function()
    local history = os.tmpname()
    local p = assert(io.popen(env_prefix() .. "python3 spec/support/repl_pty.py " .. sh_quote(history) .. " 2>&1"))
    local text = p:read("a")
    p:close()
    os.remove(history)
    assert.truthy(text:find("STATUS 0", 1, true), text)
    local _, interrupts = text:gsub("interrupted", "")
    assert.are.equal(2, interrupts, text)
    assert.truthy(text:find("abc^C", 1, true), text)
    assert.truthy(text:find("\n42\r?\n"), text)
    assert.is_nil(text:find("error", 1, true), text)
  end)
end)

describe("distill.inspect and distill.help", function()
  local inspect = require "distill.inspect"
  local help = require "distill.help"

  it("inspect.format takes depth, items and leaf", function()
    assert.are.equal("{1, ... 2 more}", inspect.format({ 1, 2, 3 }, { items = 1 }))
    assert.are.equal("{a = {... 1 entry}}", inspect.format({ a = { 1 } }, { depth = 1 }))
    assert.are.equal("{<n>, [true] = 2}", inspect.format({ 5, [true] = 2 }, {
      leaf = function(v) return v == 5 and "<n>" or nil end }))
    assert.has_error(function() inspect.format({}, 3) end,
      "inspect.format: argument #2: expected an options table {depth =, items =, leaf =}, got number")
    assert.has_error(function() inspect.format({}, { depth = 0 }) end,
      "inspect.format: depth and items must be integers >= 1")
  end)

  it("help.lookup finds names in an environment and says when it cannot", function()
    local env = { F = require "distill.functional" }
    assert.are.equal(env.F.conv2d, help.lookup("F.conv2d", env))
    assert.are.same({ nil, "F.nosuch: no such name" }, { help.lookup("F.nosuch", env) })
    assert.is_nil((help.lookup("1 + 1", env)))
    assert.has_error(function() help.lookup(nil, env) end,
      "help.lookup: argument #1: expected a name such as \"F.conv2d\", got nil")
    assert.has_error(function() help.lookup("x", nil) end,
      "help.lookup: argument #2: expected the environment table, got nil")
  end)

  it("help.text reads doc comments, and says when there are none", function()
    assert.truthy(help.text(require("distill.functional").conv2d):find("2-d convolution", 1, true))
    assert.are.same({ nil, "a number value has no documentation" }, { help.text(3) })
    assert.are.same({ nil, "no documentation found for this table" }, { help.text({}) })
  end)
end)
