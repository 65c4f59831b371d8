-- distill.repl: a Lua 5.4 read-eval-print loop with distill loaded.
--
--   require("distill.repl").run()
--
-- Globals: `distill`, and `nn`, `F`, `models` when those modules load.
-- An expression prints its values (no leading `=` needed); tensors print
-- compactly (shape, dtype, the first values) once they are large; a chunk
-- that is not complete yet ("<eof>" in the parse error) continues on the
-- next line; errors are printed and the loop goes on. Tables print with
-- depth and length limits (distill.inspect); help(x) and ?name show the
-- documentation of a distill function, module or class (distill.help).
-- Ctrl-C interrupts the running command and returns to the prompt (each
-- time: distill.interrupt keeps its handler installed); at the prompt it
-- clears the line.
--
-- On a terminal: line editing in Lua over `stty raw -echo` (left/right,
-- Home/End, Ctrl-A/E/U/K/W, backspace/delete, up/down through the history
-- kept in ~/.distill_history across sessions, Tab completion of globals and
-- of fields and methods through metatables: `distill.ran<Tab>`,
-- `x:vi<Tab>`; a long list says how many more, a second Tab shows them
-- all), a multi-line chunk recalled as one history entry, and each
-- command's time when it exceeds 0.5 s. Over a
-- pipe: no prompt, no editing, plain results, so scripts can drive it. It
-- ends at end of input (Ctrl-D) or with os.exit().
local inspect = require "distill.inspect"
local help = require "distill.help"
local interrupt = require "distill.interrupt"

local M = {}

local function stdin_is_tty()
  local ok = os.execute("[ -t 0 ]")
  return ok == true
end

-- The environment user code runs in: shortcuts on top of the globals.
function M.environment()
  local distill = require "distill"
  local env = setmetatable({}, { __index = _G })
  env.distill = distill
  for _, name in ipairs { "nn", "F", "models" } do
    local ok, module = pcall(function() return distill[name] end)
    if ok and module ~= nil then
      env[name] = module
    end
  end
  env.help = function(...)
    if select("#", ...) == 0 then
      print(M.HELP)
      return
    end
    print(M.help_text((...)))
  end
  return env
end

M.HELP = [[help(x) or ?name: the documentation of a distill function, module or class
(help(F.conv2d), ?nn.Conv2d, ?distill.checkpoint). Tab completes; Tab twice
lists every completion. Up/down walk the history. Ctrl-C interrupts the
running command (or clears the line); Ctrl-D exits.]]

--- The text help(value) prints.
function M.help_text(value)
  local text, why = help.text(value)
  return text or ("(%s)"):format(why)
end

local function is_incomplete(err)
  return type(err) == "string" and err:find("<eof>", 1, true) ~= nil
end

-- Compile `source`: as an expression first (so results print), then as a
-- statement. Returns the function, or nil plus the error and whether more
-- input could complete it.
function M.compile(source, env)
  local expr_source = source:gsub("^%s*=", "")   -- accept the old "=expr" form too
  local fn = load("return " .. expr_source, "=stdin", "t", env)
  if fn then
    return fn
  end
  local err
  fn, err = load(source, "=stdin", "t", env)
  if fn then
    return fn
  end
  return nil, err, is_incomplete(err)
end

M.COMPACT_NUMEL = 64    -- tensors with more elements print compactly
M.COMPLETION_LIMIT = 60 -- completions listed before "... and N more"
M.TIME_THRESHOLD = 0.5  -- seconds; longer commands show their time (terminal only)

local function is_tensor(value)
  local ok, result = pcall(function()
    local core = package.loaded["distill.core"]
    return core and core.is_tensor(value)
  end)
  return ok and result
end

--- A short description of a tensor: tensor{2x3, float32} [0.1, -0.2, ...]
function M.format_tensor(t)
  if t:numel() <= M.COMPACT_NUMEL then
    return tostring(t)
  end
  local shape = table.concat(t:shape(), "x")
  local flat = t:contiguous():view{ -1 }
  local shown = {}
  for i = 1, math.min(6, t:numel()) do
    local v = flat[i]
    shown[i] = math.type(v) == "integer" and tostring(v) or ("%.4g"):format(v)
  end
  local extra = ""
  if t:dtype() == "float32" then
    local ok, mean, std = pcall(function() return t:mean():item(), t:std():item() end)
    if ok then
      extra = (" mean=%.4g std=%.4g"):format(mean, std)
    end
  end
  local grad = t.requires_grad and " requires_grad" or ""
  return ("tensor{%s, %s%s} [%s, ...]%s"):format(shape, t:dtype(), grad, table.concat(shown, ", "), extra)
end

local function tensor_text(value)
  if is_tensor(value) then
    local ok, text = pcall(M.format_tensor, value)
    return ok and text or tostring(value)
  end
  return nil
end

local function format_value(value)
  return inspect.format(value, { leaf = tensor_text })
end
M.format_value = format_value

local function format_values(n, values)
  local parts = {}
  for i = 1, n do
    parts[i] = format_value(values[i])
  end
  return table.concat(parts, "\t")
end

-- Evaluate one complete chunk; prints results to `out`, errors to `err_out`.
function M.eval(fn, out, err_out)
  local results = table.pack(xpcall(fn, function(e)
    if type(e) ~= "string" then
      local mt = getmetatable(e)
      e = (mt and mt.__tostring) and tostring(e) or ("(error object is a " .. type(e) .. " value)")
    end
    return e
  end))
  if not results[1] then
    if interrupt.is_interrupt(results[2]) then
      interrupt.clear()
      err_out:write("interrupted\n")
    else
      err_out:write("error: ", tostring(results[2]), "\n")
    end
    err_out:flush()
    return false
  end
  if results.n > 1 then
    local ok, text = pcall(format_values, results.n - 1, table.move(results, 2, results.n, 1, {}))
    if ok then
      out:write(text, "\n")
    else
      err_out:write("error: cannot print the result: ", tostring(text), "\n")
    end
    out:flush()
  end
  return true
end

-- ------------------------------------------------------------ completion

-- Keys of a value visible through indexing: its own keys (tables) and, up
-- the metatable __index chain, the keys of every table found there.
local function visible_keys(value, keys, depth)
  keys, depth = keys or {}, depth or 0
  if depth > 8 then
    return keys
  end
  if type(value) == "table" then
    for k in pairs(value) do
      if type(k) == "string" then
        keys[k] = true
      end
    end
  end
  local mt = getmetatable(value)
  if type(mt) == "table" then
    local index = rawget(mt, "__index")
    if type(index) == "table" then
      visible_keys(index, keys, depth + 1)
    elseif type(index) == "function" and is_tensor(value) then
      -- tensors index through a function; their methods live in distill.Tensor
      visible_keys(package.loaded["distill.core"].Tensor, keys, depth + 1)
    end
  end
  -- modules with lazy fields (distill.nn, ...) name them in a `submodules`-
  -- like table; distill itself exposes the loaded ones only, so add them
  if type(value) == "table" and value.core and value.version then
    for _, name in ipairs { "nn", "F", "functional", "optim", "models", "data", "checkpoint",
      "distillers" } do
      keys[name] = true
    end
  end
  return keys
end

--- Completions of the identifier path ending `text` (e.g. "distill.ra",
-- "x:vi", "pri") in env: a sorted list of full replacements for the word.
function M.complete(env, text)
  local word = text:match("[%w_%.:]*$") or ""
  local base, sep, partial = word:match("^(.*)([%.:])([%w_]*)$")
  local value
  if base then
    value = env
    for part in base:gmatch("[^%.:]+") do
      local ok, v = pcall(function() return value[part] end)
      if not ok or v == nil then
        return {}, word
      end
      value = v
    end
    if base:find(":", 1, true) then
      return {}, word
    end
  else
    partial, sep, base, value = word, "", "", env
  end
  local keys = visible_keys(value)
  if value == env then
    visible_keys(_G, keys)
    for _, kw in ipairs { "and", "break", "do", "else", "elseif", "end", "false", "for", "function",
      "goto", "if", "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until",
      "while" } do
      keys[kw] = true
    end
  end
  local list = {}
  for k in pairs(keys) do
    if k:sub(1, #partial) == partial and k:match("^[%a_][%w_]*$") and not k:match("^__") then
      local ok, v = pcall(function() return value[k] end)
      if sep ~= ":" or (ok and type(v) == "function") then
        list[#list + 1] = base .. sep .. k
      end
    end
  end
  table.sort(list)
  return list, word
end

local function common_prefix(list)
  local prefix = list[1] or ""
  for i = 2, #list do
    local j = 0
    while j < #prefix and prefix:sub(j + 1, j + 1) == list[i]:sub(j + 1, j + 1) do
      j = j + 1
    end
    prefix = prefix:sub(1, j)
  end
  return prefix
end

-- --------------------------------------------------------------- history

-- A multi-line entry is one line of the history file, its newlines
-- written as this control character (one nobody types).
local HISTORY_NEWLINE = "\30"

local function history_path()
  local home = os.getenv("HOME")
  return os.getenv("DISTILL_HISTORY") or (home and (home .. "/.distill_history")) or nil
end

function M.load_history(path)
  local list = {}
  local f = path and io.open(path, "r")
  if f then
    for line in f:lines() do
      if line ~= "" then
        list[#list + 1] = line:gsub(HISTORY_NEWLINE, "\n")
      end
    end
    f:close()
  end
  while #list > 1000 do
    table.remove(list, 1)
  end
  return list
end

local function append_history(path, line)
  local f = path and io.open(path, "a")
  if f then
    f:write((line:gsub("\n", HISTORY_NEWLINE)), "\n")
    f:close()
  end
end

-- ----------------------------------------------------------- line editor

--- A line editor over byte I/O: read_byte() -> one-character string or
-- nil, write(text). editor:read_line(prompt) -> line or nil (Ctrl-D on an
-- empty line / end of input).
local Editor = {}
Editor.__index = Editor

function M.editor(opts)
  return setmetatable({
    read_byte = opts.read_byte, write = opts.write, history = opts.history or {},
    complete = opts.complete or function() return {}, "" end,
  }, Editor)
end

-- A recalled multi-line entry shows its newlines as one-column arrows.
local NEWLINE_MARK = "\u{21B5}"

function Editor:redraw(prompt, line, pos)
  self.write("\r\27[K" .. prompt .. line:gsub("\n", NEWLINE_MARK))
  local back = #line - pos
  if back > 0 then
    self.write("\27[" .. back .. "D")
  end
end

function Editor:read_line(prompt)
  local line, pos = "", 0
  local hist_index = #self.history + 1
  local saved_current = ""
  self.write(prompt)
  local previous_tab = false
  while true do
    local c = self.read_byte()
    if c == nil then
      return nil
    end
    local b = c:byte()
    self.last_key_tab, previous_tab = previous_tab, b == 9
    if b == 13 or b == 10 then
      self.write("\r\n")
      return line
    elseif b == 4 then                                   -- Ctrl-D
      if line == "" then
        self.write("\r\n")
        return nil
      end
      if pos < #line then
        line = line:sub(1, pos) .. line:sub(pos + 2)
      end
    elseif b == 3 then                                   -- Ctrl-C: drop the line
      self.write("^C\r\n")
      return "", "cancelled"
    elseif b == 127 or b == 8 then                       -- backspace
      if pos > 0 then
        line = line:sub(1, pos - 1) .. line:sub(pos + 1)
        pos = pos - 1
      end
    elseif b == 1 then
      pos = 0
    elseif b == 5 then
      pos = #line
    elseif b == 21 then                                  -- Ctrl-U
      line, pos = line:sub(pos + 1), 0
    elseif b == 11 then                                  -- Ctrl-K
      line = line:sub(1, pos)
    elseif b == 23 then                                  -- Ctrl-W
      local before = line:sub(1, pos):gsub("[%w_]*%s*$", "")
      line, pos = before .. line:sub(pos + 1), #before
    elseif b == 12 then                                  -- Ctrl-L
      self.write("\27[H\27[2J")
    elseif b == 9 then                                   -- Tab
      local list, word = self.complete(line:sub(1, pos))
      if #list >= 1 then
        local prefix = #list == 1 and list[1] or common_prefix(list)
        if #prefix > #word then
          line = line:sub(1, pos - #word) .. prefix .. line:sub(pos + 1)
          pos = pos - #word + #prefix
        elseif #list > 1 then
          -- a second Tab in a row shows the whole list
          local limit = self.last_key_tab and #list or M.COMPLETION_LIMIT
          local shown = {}
          for i = 1, math.min(#list, limit) do
            shown[i] = list[i]:match("[%w_]*$")
          end
          local more = #list > limit and ("  ... and %d more (Tab again lists all)"):format(#list - limit) or ""
          self.write("\r\n" .. table.concat(shown, "  ") .. more .. "\r\n")
        end
      end
    elseif b == 27 then                                  -- escape sequences
      local c2 = self.read_byte()
      local c3 = c2 and self.read_byte()
      if (c2 == "[" or c2 == "O") and c3 then
        if c3 == "A" or c3 == "B" then                   -- up / down
          if hist_index == #self.history + 1 then
            saved_current = line
          end
          hist_index = hist_index + (c3 == "A" and -1 or 1)
          hist_index = math.max(1, math.min(#self.history + 1, hist_index))
          line = self.history[hist_index] or saved_current
          pos = #line
        elseif c3 == "C" then
          pos = math.min(#line, pos + 1)
        elseif c3 == "D" then
          pos = math.max(0, pos - 1)
        elseif c3 == "H" then
          pos = 0
        elseif c3 == "F" then
          pos = #line
        elseif c3:match("%d") then
          local final = self.read_byte()
          if final == "~" then
            if c3 == "3" and pos < #line then            -- delete
              line = line:sub(1, pos) .. line:sub(pos + 2)
            elseif c3 == "1" or c3 == "7" then
              pos = 0
            elseif c3 == "4" or c3 == "8" then
              pos = #line
            end
          end
        end
      end
    elseif b >= 32 then
      line = line:sub(1, pos) .. c .. line:sub(pos + 1)
      pos = pos + 1
    end
    self:redraw(prompt, line, pos)
  end
end

-- -------------------------------------------------------------------- run

local function clock()
  local core = package.loaded["distill.core"]
  return core and core.wallclock and core.wallclock() or os.clock()
end

-- opts (all optional): input (file, default io.stdin), output (default
-- io.stdout), errors (default io.stderr), prompt (boolean; default: stdin
-- is a terminal), env (table), edit (boolean; default: stdin and stdout
-- are terminals), history (path; default ~/.distill_history).
function M.run(opts)
  opts = opts or {}
  local input = opts.input or io.stdin
  local out = opts.output or io.stdout
  local err_out = opts.errors or io.stderr
  local interactive = opts.prompt
  if interactive == nil then
    interactive = input == io.stdin and stdin_is_tty()
  end
  local env = opts.env or M.environment()
  local edit = opts.edit
  if edit == nil then
    edit = interactive and input == io.stdin and os.execute("[ -t 1 ]") == true
  end

  local editor, history_file
  local raw = false
  local function set_raw(on)
    if edit and on ~= raw then
      os.execute(on and "stty raw -echo 2>/dev/null" or "stty sane 2>/dev/null")
      raw = on
    end
  end
  if edit then
    history_file = opts.history or history_path()
    editor = M.editor{
      read_byte = function() return input:read(1) end,
      write = function(text) out:write(text); out:flush() end,
      history = M.load_history(history_file),
      complete = function(text) return M.complete(env, text) end,
    }
  end

  if interactive then
    local distill = env.distill
    out:write(string.format("distill %s, %s. Shortcuts: distill, nn, F, models. %sCtrl-D exits.\n",
      distill and distill.version or "?", _VERSION, edit and "Tab completes. " or ""))
  end

  local function read_line(prompt)
    if editor then
      set_raw(true)
      local ok, line, cancelled = pcall(editor.read_line, editor, prompt)
      set_raw(false)
      if not ok then
        error(line, 0)
      end
      return line and (line .. "\n") or nil, cancelled == "cancelled"
    end
    if interactive then
      out:write(prompt)
      out:flush()
    end
    return input:read("L")
  end

  local buffer = nil

  local function remember(chunk)
    local entry = chunk:gsub("\n$", "")
    if editor and entry:match("%S") and editor.history[#editor.history] ~= entry then
      editor.history[#editor.history + 1] = entry
      append_history(history_file, entry)
    end
  end

  -- One line read and, once a chunk is complete, run; "end" at end of input.
  local function step()
    local line, cancelled = read_line(buffer and ">> " or "> ")
    if cancelled then
      buffer = nil   -- Ctrl-C at a prompt drops the line and an unfinished chunk
      return
    end
    if line == nil then
      if buffer then
        -- input ended inside an unfinished chunk: report it
        local _, err = M.compile(buffer, env)
        err_out:write("error: ", tostring(err), "\n")
      end
      if interactive and not editor then
        out:write("\n")
      end
      out:flush()
      return "end"
    end
    buffer = buffer and (buffer .. line) or line
    if buffer:match("^%s*$") then
      buffer = nil
    elseif buffer:match("^%s*%?") then
      local name = buffer:match("^%s*%?%s*(.-)%s*$")
      remember(buffer)
      buffer = nil
      if name == "" then
        out:write(M.HELP, "\n")
      else
        local value, why = help.lookup(name, env)
        out:write(value ~= nil and M.help_text(value) or why, "\n")
      end
      out:flush()
    else
      local fn, err, incomplete = M.compile(buffer, env)
      if fn or not incomplete then
        remember(buffer)   -- a multi-line chunk is one history entry
      end
      if fn then
        buffer = nil
        local t0 = clock()
        M.eval(fn, out, err_out)
        local seconds = clock() - t0
        if interactive and seconds >= M.TIME_THRESHOLD then
          out:write(("(%.2f s)\n"):format(seconds))
          out:flush()
        end
      elseif not incomplete then
        buffer = nil
        err_out:write("error: ", tostring(err), "\n")
        err_out:flush()
      end
    end
  end

  local interrupts_were_on = interrupt.enable()
  local ok_run, run_err = true, nil
  while true do
    local ok, result = pcall(step)
    if not ok then
      set_raw(false)
      if not interrupt.is_interrupt(result) then
        ok_run, run_err = false, result
        break
      end
      -- a Ctrl-C outside a command (reading a line, printing): drop the chunk
      interrupt.clear()
      buffer = nil
      err_out:write("\ninterrupted\n")
      err_out:flush()
    elseif result == "end" then
      break
    end
  end
  if not interrupts_were_on then
    interrupt.disable()
  end
  set_raw(false)
  if not ok_run then
    error(run_err, 0)
  end
end

return M
