-- distill.log: progress display and the metrics records of a run.
--
--   local log = require "distill.log"
--   local logger = log.new(run_dir, {progress = "auto", out = io.stdout})
--   logger:epoch_begin(epoch, epochs, num_batches)
--   logger:batch(i, {loss =, acc =, images_per_s =})   -- bar (terminal) or plain lines
--   logger:epoch_end(record)       -- appends metrics.jsonl / metrics.csv, redraws curves
--
-- On a terminal the progress is a bar redrawn with \r; otherwise (pipes,
-- CI) a plain line every few batches. Records are flat tables of numbers
-- (epoch, lr, time, train_loss, train_<term>, train_top1, ..., test_top5).
local files = require "distill.files"
local json = require "distill.json"
local plot = require "distill.plot"

local log = {}

local Logger = {}
Logger.__index = Logger

-- Loggers whose progress bar line is open (not ended by a newline yet).
local open_bars = setmetatable({}, { __mode = "k" })

--- Ends every open progress bar line, so that what is printed next (an
-- error, the interrupt line) starts on a line of its own.
function log.end_progress_lines()
  for logger in pairs(open_bars) do
    if logger.bar_open then
      logger.out:write("\n")
      logger.out:flush()
      logger.bar_open = false
    end
  end
  open_bars = setmetatable({}, { __mode = "k" })
end

--- Is standard output a terminal? (os.execute inherits our stdout; a
-- popen'd `test -t 1` would test its own pipe.)
function log.stdout_is_tty()
  local term = os.getenv("TERM")
  if not term or term == "" or term == "dumb" then
    return false
  end
  local ok = os.execute("test -t 1")
  return ok == true
end

--- The terminal's width in columns: $COLUMNS, else `stty size`, else 80.
function log.terminal_width()
  local columns = math.tointeger(tonumber(os.getenv("COLUMNS") or ""))
  if columns and columns > 0 then
    return columns
  end
  local p = io.popen("stty size 2>/dev/null")
  local text = p and p:read("a") or ""
  if p then
    p:close()
  end
  columns = math.tointeger(tonumber(text:match("^%s*%d+%s+(%d+)") or ""))
  return (columns and columns > 0) and columns or 80
end

--- The progress bar line that fits `width` columns: the bar shrinks (to 10
-- cells), then img/s, acc and ETA are dropped, then the line is cut; it
-- never reaches the last column, so the terminal never wraps it.
function log.bar_line(width, fields)
  if math.type(width) ~= "integer" or width < 1 or type(fields) ~= "table" then
    error("log.bar_line: expected (width: an integer >= 1, fields: a table)", 2)
  end
  local limit = width - 1
  local function render(cells, dropped)
    local filled = fields.total > 0 and math.floor(cells * fields.done / fields.total) or 0
    local bar = string.rep("=", filled) .. (filled < cells and ">" or "") ..
      string.rep(" ", math.max(0, cells - filled - 1))
    local parts = { ("%sepoch %d/%d [%s] %d/%d loss %.4f"):format(fields.prefix or "", fields.epoch,
      fields.epochs, bar, fields.done, fields.total, fields.loss) }
    if not dropped.acc then parts[#parts + 1] = ("acc %5.2f%%"):format(fields.acc) end
    if not dropped.speed then parts[#parts + 1] = ("%6.0f img/s"):format(fields.images_per_s or 0) end
    if not dropped.eta then parts[#parts + 1] = "ETA " .. fields.eta end
    return table.concat(parts, " ")
  end
  local dropped = {}
  local line
  for cells = 24, 10, -2 do
    line = render(cells, dropped)
    if #line <= limit then
      return line
    end
  end
  for _, field in ipairs { "speed", "acc", "eta" } do
    dropped[field] = true
    line = render(10, dropped)
    if #line <= limit then
      return line
    end
  end
  return line:sub(1, limit)
end

local function format_duration(seconds)
  if seconds ~= seconds or seconds == math.huge or seconds < 0 then
    return "--:--"
  end
  seconds = math.floor(seconds + 0.5)
  local h, m, s = seconds // 3600, (seconds % 3600) // 60, seconds % 60
  if h > 0 then
    return ("%d:%02d:%02d"):format(h, m, s)
  end
  return ("%d:%02d"):format(m, s)
end
log.format_duration = format_duration

--- The records of a metrics.jsonl (a list of tables), [] when absent.
-- A last line that is not valid JSON (a write torn by a crash) is dropped
-- and described in the second result; a broken line before it is an
-- error naming the file and the line.
function log.read_metrics(path)
  local records = {}
  local f = io.open(path, "r")
  if not f then
    return records
  end
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
  end
  f:close()
  while #lines > 0 and not lines[#lines]:match("%S") do
    lines[#lines] = nil
  end
  for i, line in ipairs(lines) do
    if line:match("%S") then
      local ok, record = pcall(json.decode, line)
      if not ok or type(record) ~= "table" then
        local problem = ("%s, line %d, is not a JSON record (%s)"):format(path, i,
          tostring(ok and type(record) or record))
        if i < #lines then
          error("log.read_metrics: " .. problem, 0)
        end
        return records, problem .. ": dropped (a write cut short by a crash)"
      end
      records[#records + 1] = record
    end
  end
  return records
end

-- Column order: epoch, lr, train_loss, the train_<term> losses in order,
-- then accuracies, test loss, speed and time.
local function columns_of(record, term_names)
  local cols = { "epoch", "lr", "train_loss" }
  for _, name in ipairs(term_names) do
    cols[#cols + 1] = "train_" .. name
  end
  for _, c in ipairs { "train_top1", "train_top5", "test_loss", "test_top1", "test_top5",
    "images_per_s", "epoch_time", "time" } do
    if record[c] ~= nil then
      cols[#cols + 1] = c
    end
  end
  return cols
end

local function csv_value(v)
  if v == nil then
    return ""
  elseif math.type(v) == "integer" then
    return tostring(v)
  elseif type(v) == "number" then
    return ("%.10g"):format(v)
  end
  return tostring(v)
end

--- log.new(run_dir, {progress = "auto"|"bar"|"lines"|"none", out = file,
---                    term_names = {...}, plot = true, lines_per_epoch = 10,
---                    label = "stage x"})
-- label: a prefix of the progress and epoch lines (a pre-training stage's).
function log.new(run_dir, opts)
  opts = opts or {}
  local mode = opts.progress or "auto"
  if mode == "auto" then
    mode = log.stdout_is_tty() and "bar" or "lines"
  end
  local self = setmetatable({
    run_dir = run_dir,
    mode = mode,
    out = opts.out or io.stdout,
    term_names = opts.term_names or {},
    plot = opts.plot ~= false,
    lines_per_epoch = opts.lines_per_epoch or 10,
    records = {},
    plot_warned = false,
    prefix = opts.label and (opts.label .. " ") or "",
  }, Logger)
  if run_dir then
    files.mkdir(run_dir)
  end
  return self
end

function Logger:print(...)
  if self.mode == "none" then
    return
  end
  if self.bar_open then
    self.out:write("\n")
    self.bar_open = false
  end
  local parts = table.pack(...)
  for i = 1, parts.n do
    parts[i] = tostring(parts[i])
  end
  self.out:write(table.concat(parts, " "), "\n")
  self.out:flush()
end

function Logger:epoch_begin(epoch, epochs, num_batches)
  self.epoch, self.epochs, self.num_batches = epoch, epochs, num_batches
  self.batch_index = 0
  self.last_draw = nil
end

-- stats = {loss =, acc =, images_per_s =, elapsed =}
function Logger:batch(i, stats)
  self.batch_index = i
  if self.mode == "none" then
    return
  end
  local n = self.num_batches or 0
  local rate = stats.elapsed and stats.elapsed > 0 and i / stats.elapsed or 0
  local eta = rate > 0 and (n - i) / rate or math.huge
  if self.mode == "bar" then
    -- at most ~10 redraws a second, and always the last batch
    local now = stats.elapsed or 0
    if i ~= n and i ~= 1 and self.last_draw and now - self.last_draw < 0.1 then
      return
    end
    self.last_draw = now
    self.columns = self.columns or log.terminal_width()
    self.out:write("\r\27[K", log.bar_line(self.columns, { prefix = self.prefix, epoch = self.epoch,
      epochs = self.epochs, done = i, total = n, loss = stats.loss, acc = stats.acc,
      images_per_s = stats.images_per_s, eta = format_duration(eta) }))
    self.out:flush()
    self.bar_open = true
    open_bars[self] = true
    if i == n then
      self.out:write("\n")
      self.bar_open = false
    end
  else
    local every = math.max(1, n // math.max(1, self.lines_per_epoch))
    if i % every == 0 or i == n then
      self.out:write(("%sepoch %d/%d batch %d/%d loss %.4f acc %.2f%% %.0f img/s ETA %s\n"):format(
        self.prefix, self.epoch, self.epochs, i, n, stats.loss, stats.acc, stats.images_per_s or 0,
        format_duration(eta)))
      self.out:flush()
    end
  end
end

--- Replaces the stored records (used on resume: the epochs that stay).
function Logger:set_records(records)
  self.records = records
  self:write_metrics()
end

--- On resume: keeps the run directory's records up to `epoch`, the last
-- one its checkpoint completed (a partial epoch after it is dropped).
function Logger:resume_at(epoch)
  if not self.run_dir then
    return
  end
  local kept = {}
  local records, warning = log.read_metrics(self.run_dir .. "/metrics.jsonl")
  if warning then
    self:print("warning: " .. warning)
  end
  for _, r in ipairs(records) do
    if r.epoch <= epoch then
      kept[#kept + 1] = r
    end
  end
  self:set_records(kept)
end

function Logger:write_metrics()
  if not self.run_dir then
    return
  end
  local jsonl = {}
  for _, r in ipairs(self.records) do
    jsonl[#jsonl + 1] = json.encode(r)
  end
  files.write(self.run_dir .. "/metrics.jsonl", #jsonl > 0 and table.concat(jsonl, "\n") .. "\n" or "")
  local csv = {}
  if #self.records > 0 then
    local cols = columns_of(self.records[#self.records], self.term_names)
    csv[1] = table.concat(cols, ",")
    for _, r in ipairs(self.records) do
      local row = {}
      for i, c in ipairs(cols) do
        row[i] = csv_value(r[c])
      end
      csv[#csv + 1] = table.concat(row, ",")
    end
  end
  files.write(self.run_dir .. "/metrics.csv", #csv > 0 and table.concat(csv, "\n") .. "\n" or "")
end

--- Appends an epoch record, rewrites the metrics files, redraws the curves
-- and prints a one-line summary.
function Logger:epoch_end(record)
  self.records[#self.records + 1] = record
  self:write_metrics()
  local parts = { ("%sepoch %d/%d"):format(self.prefix, record.epoch, self.epochs or record.epoch),
    ("loss %.4f"):format(record.train_loss) }
  for _, name in ipairs(self.term_names) do
    local v = record["train_" .. name]
    if v and #self.term_names > 1 then
      parts[#parts + 1] = ("%s %.4f"):format(name, v)
    end
  end
  parts[#parts + 1] = ("train %.2f%%"):format(record.train_top1)
  if record.test_top1 then
    parts[#parts + 1] = ("test %.2f%% (top-5 %.2f%%)"):format(record.test_top1, record.test_top5)
  end
  parts[#parts + 1] = ("lr %.4g"):format(record.lr)
  parts[#parts + 1] = ("%.0f img/s"):format(record.images_per_s)
  parts[#parts + 1] = format_duration(record.epoch_time)
  self:print(table.concat(parts, "  "))
  self:draw_curves()
end

--- Redraws the run directory's curves (when plotting is on); a failure is
-- said once.
function Logger:draw_curves()
  if self.plot and self.run_dir then
    local ok, err = plot.curves(self.run_dir)
    if not ok and not self.plot_warned then
      self.plot_warned = true
      self:print("(no curves: " .. tostring(err) .. ")")
    end
  end
end

return log
