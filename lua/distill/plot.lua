-- distill.plot: training curves drawn by gnuplot (Debian's gnuplot-nox).
--
--   plot.curves(run_dir)                      -- run_dir/curves.svg + curves.png
--   plot.overlay({dir1, dir2, ...}, "cmp.svg") -- several runs in one figure
--
-- Both read each run's metrics.csv. The left panel shows every loss term
-- per epoch, the right panel train/test top-1 accuracy. Without gnuplot
-- they return nil and a message; training goes on regardless.
local plot = {}

local function shell_quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

local function gp_quote(text)
  return '"' .. tostring(text):gsub('\\', '\\\\'):gsub('"', '\\"') .. '"'
end

local gnuplot_path
--- The gnuplot executable or nil.
function plot.gnuplot()
  if gnuplot_path == nil then
    local pipe = io.popen("command -v gnuplot 2>/dev/null")
    local found = pipe and pipe:read("l")
    if pipe then
      pipe:close()
    end
    gnuplot_path = (found and found ~= "") and found or false
  end
  return gnuplot_path or nil
end

local terminals
local function has_terminal(name)
  if terminals == nil then
    terminals = {}
    local gp = plot.gnuplot()
    if gp then
      local pipe = io.popen(shell_quote(gp) .. " -e 'set terminal' 2>&1")
      if pipe then
        for line in pipe:lines() do
          local t = line:match("^%s*(%S+)%s")
          if t then
            terminals[t] = true
          end
        end
        pipe:close()
      end
    end
  end
  return terminals[name] == true
end

--- Reads a metrics.csv: header list and rows (lists of strings).
function plot.read_csv(path)
  local f = io.open(path, "r")
  if not f then
    return nil, "cannot read " .. path
  end
  local header
  local rows = {}
  for line in f:lines() do
    local fields = {}
    for field in (line .. ","):gmatch("([^,]*),") do
      fields[#fields + 1] = field
    end
    if not header then
      header = fields
    else
      rows[#rows + 1] = fields
    end
  end
  f:close()
  if not header then
    return nil, path .. " is empty"
  end
  return header, rows
end

local function column_index(header, name)
  for i, h in ipairs(header) do
    if h == name then
      return i
    end
  end
  return nil
end

local function run_label(dir)
  return (dir:gsub("/+$", ""):match("([^/]+)$") or dir)
end

-- The loss columns of a header: train_loss, the per-term train_* losses, test_loss.
local function loss_columns(header)
  local list = {}
  for _, h in ipairs(header) do
    if h:match("^train_") and not h:match("_top%d$") and h ~= "train_images_per_s" then
      list[#list + 1] = h
    end
  end
  if column_index(header, "test_loss") then
    list[#list + 1] = "test_loss"
  end
  return list
end

-- runs = {{dir =, label =, header =}, ...}; writes script text.
local function script_for(runs, out_base, formats, title)
  local lines = { "set datafile separator ','", "set key outside bottom center horizontal",
    "set grid", "set xlabel 'epoch'", "set format x '%g'" }
  local max_epochs = 0
  for _, run in ipairs(runs) do
    max_epochs = math.max(max_epochs, run.rows)
  end
  if max_epochs <= 20 then
    lines[#lines + 1] = "set xtics 1"
  end
  if max_epochs == 1 then
    lines[#lines + 1] = "set xrange [0.5:1.5]"
  end
  local outputs = {}
  for _, format in ipairs(formats) do
    local term
    if format == "svg" then
      term = "set terminal svg size 1100,480 dynamic enhanced font 'sans,11' background rgb 'white'"
    elseif has_terminal("pngcairo") then
      term = "set terminal pngcairo size 1100,480 font 'sans,10'"
    else
      term = "set terminal png size 1100,480"
    end
    lines[#lines + 1] = term
    lines[#lines + 1] = "set output " .. gp_quote(out_base .. "." .. format)
    outputs[#outputs + 1] = out_base .. "." .. format
    lines[#lines + 1] = "set multiplot layout 1,2 title " .. gp_quote(title)
    -- losses
    local loss_plots = {}
    for _, run in ipairs(runs) do
      for _, col in ipairs(loss_columns(run.header)) do
        local label = #runs > 1 and (run.label .. " " .. col) or col
        loss_plots[#loss_plots + 1] = ("%s using (column('epoch')):(column(%s)) with linespoints title %s")
          :format(gp_quote(run.csv), gp_quote(col), gp_quote(label:gsub("_", " ")))
      end
    end
    lines[#lines + 1] = "set title 'losses'"
    lines[#lines + 1] = "set ylabel 'loss'"
    lines[#lines + 1] = "set logscale y"
    lines[#lines + 1] = "plot " .. table.concat(loss_plots, ", \\\n  ")
    lines[#lines + 1] = "unset logscale y"
    -- accuracy
    local acc_plots = {}
    for _, run in ipairs(runs) do
      for _, col in ipairs { "train_top1", "test_top1" } do
        if column_index(run.header, col) then
          local label = #runs > 1 and (run.label .. " " .. col) or col
          acc_plots[#acc_plots + 1] = ("%s using (column('epoch')):(column(%s)) with linespoints title %s")
            :format(gp_quote(run.csv), gp_quote(col), gp_quote(label:gsub("_", " ")))
        end
      end
    end
    lines[#lines + 1] = "set title 'top-1 accuracy (%)'"
    lines[#lines + 1] = "set ylabel 'accuracy (%)'"
    lines[#lines + 1] = "plot " .. table.concat(acc_plots, ", \\\n  ")
    lines[#lines + 1] = "unset multiplot"
    lines[#lines + 1] = "set output"
  end
  return table.concat(lines, "\n") .. "\n", outputs
end

local function run_gnuplot(script, script_path)
  local gp = plot.gnuplot()
  if not gp then
    return nil, "gnuplot not found (install gnuplot-nox)"
  end
  local f = io.open(script_path, "w")
  if not f then
    return nil, "cannot write " .. script_path
  end
  f:write(script)
  f:close()
  local log_path = script_path .. ".log"
  local ok = os.execute(shell_quote(gp) .. " " .. shell_quote(script_path) .. " > "
    .. shell_quote(log_path) .. " 2>&1")
  if not ok then
    local lf = io.open(log_path, "r")
    local text = lf and lf:read("a") or ""
    if lf then
      lf:close()
    end
    return nil, "gnuplot failed: " .. text
  end
  os.remove(log_path)
  return true
end

local function load_runs(dirs)
  local runs = {}
  for _, dir in ipairs(dirs) do
    local csv = dir .. "/metrics.csv"
    local header, rows = plot.read_csv(csv)
    if not header then
      return nil, rows
    end
    if #rows == 0 then
      return nil, csv .. " has no epochs yet"
    end
    runs[#runs + 1] = { dir = dir, csv = csv, header = header, label = run_label(dir), rows = #rows }
  end
  return runs
end

--- Draws run_dir/curves.svg and curves.png. Returns the list of files, or
-- nil and a message.
function plot.curves(run_dir, opts)
  opts = opts or {}
  local runs, err = load_runs { run_dir }
  if not runs then
    return nil, err
  end
  local base = run_dir .. "/curves"
  local script, outputs = script_for(runs, base, opts.formats or { "svg", "png" },
    opts.title or run_label(run_dir))
  local ok, msg = run_gnuplot(script, run_dir .. "/curves.gp")
  if not ok then
    return nil, msg
  end
  return outputs
end

--- Overlays several runs. out: a .svg or .png path (default
-- "comparison.svg"); both formats are written when out has no extension.
function plot.overlay(run_dirs, out, opts)
  opts = opts or {}
  if type(run_dirs) ~= "table" or #run_dirs == 0 then
    return nil, "plot.overlay: expected a list of run directories"
  end
  local runs, err = load_runs(run_dirs)
  if not runs then
    return nil, err
  end
  out = out or "comparison.svg"
  local base, ext = out:match("^(.*)%.(%w+)$")
  local formats
  if ext == "svg" or ext == "png" then
    formats = { ext }
  else
    base, formats = out, { "svg", "png" }
  end
  local labels = {}
  for i, run in ipairs(runs) do
    labels[i] = run.label
  end
  local script, outputs = script_for(runs, base, formats, opts.title or table.concat(labels, " vs "))
  local ok, msg = run_gnuplot(script, base .. ".gp")
  if not ok then
    return nil, msg
  end
  return outputs
end

return plot
