-- Misuse of the public Lua functions: each one, called with arguments of
-- the wrong kind (`true` for every argument), raises an error that names
-- it, not an internal Lua error ("attempt to index a nil value", "bad
-- argument #1 to 'rawget'"). The calls are generated from the module
-- tables, so a new public function without argument checks makes this
-- spec fail. spec/misuse_spec.lua does the same for the C binding.
local distill = require "distill"
local h = require "support.helpers"

local MODULES = {
  "distill.checkpoint", "distill.config", "distill.log", "distill.gradcheck", "distill.schedule",
  "distill.optim", "distill.run_dir", "distill.files", "distill.json", "distill.plot",
  "distill.registry", "distill.filters", "distill.configs", "distill.inspect", "distill.help",
  "distill.interrupt", "distill.errors", "distill.stages", "distill.trainer", "distill.distillers",
  "distill.nn", "distill.data", "distill.models", "distill.dist",
}

-- Functions for which `true` arguments are valid, or that take none.
local ACCEPTS_ANY = {
  ["distill.interrupt.enable"] = "no arguments", ["distill.interrupt.disable"] = "no arguments",
  ["distill.interrupt.enabled"] = "no arguments", ["distill.interrupt.pending"] = "no arguments",
  ["distill.interrupt.clear"] = "no arguments", ["distill.interrupt.is_interrupt"] = "any error value",
  ["distill.interrupt.is_stopped"] = "any error value", ["distill.errors.capture"] = "any error value",
  ["distill.errors.display"] = "any error value", ["distill.errors.traceback_of"] = "any error value",
  ["distill.log.end_progress_lines"] = "no arguments", ["distill.log.terminal_width"] = "no arguments", ["distill.log.stdout_is_tty"] = "no arguments",
  ["distill.nn.is_module"] = "any value", ["distill.distillers.names"] = "no arguments",
  ["distill.models.families"] = "no arguments", ["distill.stages.list"] = "no arguments",
  ["distill.help.text"] = "any value (says it has no documentation)",
  ["distill.json.encode"] = "any JSON value", ["distill.dist.available"] = "no arguments",
  ["distill.dist.rank"] = "no arguments", ["distill.dist.size"] = "no arguments",
  ["distill.dist.is_main"] = "no arguments", ["distill.dist.init"] = "no arguments",
  ["distill.dist.barrier"] = "no arguments", ["distill.dist.code_fingerprint"] = "no arguments",
}

-- Not validated yet (issue 15): each entry is a function still to fix; the
-- spec fails when one of them starts checking its arguments, so that the
-- list only shrinks.
local NOT_YET_VALIDATED = require "support.misuse_lua_debt"

local function public_functions()
  local list = {}
  for _, module_name in ipairs(MODULES) do
    local module = require(module_name)
    local names = {}
    for name, value in pairs(module) do
      if type(name) == "string" and type(value) == "function" and not name:match("^_") then
        names[#names + 1] = name
      end
    end
    table.sort(names)
    for _, name in ipairs(names) do
      list[#list + 1] = { id = module_name .. "." .. name, fn = module[name], name = name,
        short = module_name:gsub("^distill%.", "") }
    end
  end
  return list
end

-- Did fn(true, true, true) fail with a message naming the function?
local function validates(entry)
  local ok, err = pcall(entry.fn, true, true, true)
  if ok then
    return false, "accepted (true, true, true)"
  end
  local message = require("distill.errors").display(err)
  if message:find("attempt to ", 1, true) or message:find("bad argument #", 1, true) then
    return false, message
  end
  if not (message:find(entry.name, 1, true) or message:find(entry.short, 1, true)) then
    return false, "the message does not name it: " .. message
  end
  return true
end

describe("public Lua functions given wrong arguments", function()
  local entries = public_functions()

  it("cover the modules (the generator finds their functions)", function()
    assert.is_true(#entries > 100, #entries)
  end)

  it("raise an error naming the function", function()
    local failures = {}
    for _, entry in ipairs(entries) do
      if not ACCEPTS_ANY[entry.id] and not NOT_YET_VALIDATED[entry.id] then
        local ok, why = validates(entry)
        if not ok then
          failures[#failures + 1] = entry.id .. ": " .. why
        end
      end
    end
    assert.are.same({}, failures)
  end)

  it("the list of functions still to fix only shrinks", function()
    local fixed = {}
    for _, entry in ipairs(entries) do
      if NOT_YET_VALIDATED[entry.id] and validates(entry) then
        fixed[#fixed + 1] = entry.id
      end
    end
    assert.are.same({}, fixed, "remove from spec/support/misuse_lua_debt.lua")
  end)
end)

describe("the misuse examples of issue 15", function()
  it("a distiller's loss without teacher outputs names the distiller", function()
    local kd = distill.distillers.kd{ T = 4 }
    local s_out = { logits = distill.randn{ 2, 3 } }
    h.fails("KD:loss: argument #2: expected the teacher's outputs", function() return kd:loss(s_out, nil) end)
    h.fails("KD:loss: argument #1: expected the student's outputs", function() return kd:loss(nil, s_out) end)
    assert.is_true(distill.is_tensor(kd:loss(s_out, { logits = distill.randn{ 2, 3 } })))
    -- a distiller without a teacher (CE) needs only the student's
    local ce = distill.distillers.ce()
    assert.is_true(distill.is_tensor(ce:loss(s_out, nil, distill.tensor({ 1, 2 }, "int64"))))
  end)

  it("gradcheck given a number for the function names itself", function()
    h.fails("gradcheck: argument #1: expected the function to check, got number",
      require("distill.gradcheck").gradcheck, 3, {})
  end)

  it("the loader given a tensor says it wants a dataset", function()
    h.fails("loader: argument #1: expected a dataset (a table with :get(i) and #), got a tensor",
      require("distill.data").loader, distill.zeros{ 2 })
  end)
end)
