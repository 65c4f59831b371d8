-- distill.plot: training curves drawn by gnuplot (Debian's gnuplot-nox).
--
--   plot.curves(run_dir)                      -- run_dir/curves.svg + curves.png
--   plot.overlay({dir1, dir2, ...}, "cmp.svg") -- several runs in one figure
--   plot.overlay(dirs, "cmp", {groups = {"kd", "kd", "ce"}, mean = true})  -- a colour per group
--   plot.metric_vs({{label = "CE", points = {{x = 128, mean = 71.2, std = 0.3}}}}, "top1_vs_bs")
-- overlay and metric_vs write their gnuplot script to a temporary file, or
-- keep it where opts.script says.
--
-- Both read each run's metrics.csv. The panels show every loss term per
-- epoch, train/test top-1 accuracy and the learning rate; several runs get
-- a colour each and a dash pattern per series. Titles and labels are
-- printed as written (no gnuplot markup: `_` stays `_`). Without gnuplot
-- they return nil and a message; training goes on regardless.
local args = require "distill.args"

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
  args.string("plot.read_csv", 1, path, "the path of a metrics.csv")
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

-- The gnuplot terminal line of an output format.
local function terminal(format, width, height)
  if format == "svg" then
    return ("set terminal svg size %d,%d dynamic enhanced font 'sans,11' background rgb 'white'")
      :format(width, height)
  elseif has_terminal("pngcairo") then
    return ("set terminal pngcairo size %d,%d font 'sans,10'"):format(width, height)
  end
  return ("set terminal png size %d,%d"):format(width, height)
end

-- Line styles: one colour per run (when several are drawn), one dash
-- pattern per series of a run (the loss terms; train vs test accuracy).
local PALETTE = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#843c39", "#7b4173" }

local function color(i)
  return PALETTE[(i - 1) % #PALETTE + 1]
end

-- One plot item: a column of a run's CSV against the epoch.
local function curve(run, col, style, label)
  return ("%s using (column('epoch')):(column(%s)) with linespoints %s title %s noenhanced")
    :format(gp_quote(run.csv), gp_quote(col), style, gp_quote(label))
end

-- The style of series k of run i: a single run gets a colour per series,
-- several runs a colour per run and a dash pattern per series.
local function series_style(runs, i, k)
  if #runs == 1 then
    return ("lc rgb '%s' lw 1.5 pt 7 ps 0.5"):format(color(k))
  end
  return ("lc rgb '%s' dt %d lw 1.5 pt %d ps 0.5"):format(color(i), k, 6 + k)
end

-- Ends a script's `lines`: for each format an output file base.<format> of
-- width x height holding a row of `panels` plots under `title`, which
-- add_panels() appends. Returns the script text and the output paths.
local function multiplot_script(lines, base, formats, panels, width, height, title, add_panels)
  local outputs = {}
  for _, format in ipairs(formats) do
    lines[#lines + 1] = terminal(format, width, height)
    lines[#lines + 1] = "set output " .. gp_quote(base .. "." .. format)
    outputs[#outputs + 1] = base .. "." .. format
    lines[#lines + 1] = ("set multiplot layout 1,%d title %s noenhanced"):format(panels, gp_quote(title))
    add_panels()
    lines[#lines + 1] = "unset multiplot"
    lines[#lines + 1] = "set output"
  end
  return table.concat(lines, "\n") .. "\n", outputs
end

-- runs = {{dir =, label =, header =}, ...}; writes script text. Three
-- panels: the loss terms, train/test top-1, and the learning rate.
local function script_for(runs, out_base, formats, title)
  local lines = { "set datafile separator ','", "set key outside bottom center horizontal",
    "set grid", "set xlabel 'epoch'", "set format x '%g'", "set format y '%g'" }
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
  local function label(run, col)
    return #runs > 1 and (run.label .. " " .. col) or col
  end
  local loss_plots, acc_plots, lr_plots = {}, {}, {}
  for i, run in ipairs(runs) do
    for k, col in ipairs(loss_columns(run.header)) do
      loss_plots[#loss_plots + 1] = curve(run, col, series_style(runs, i, k), label(run, col))
    end
    for k, col in ipairs { "train_top1", "test_top1" } do
      if column_index(run.header, col) then
        acc_plots[#acc_plots + 1] = curve(run, col, series_style(runs, i, k), label(run, col))
      end
    end
    if column_index(run.header, "lr") then
      lr_plots[#lr_plots + 1] = curve(run, "lr", series_style(runs, i, 1), #runs > 1 and run.label or "lr")
    end
  end
  local panels = #lr_plots > 0 and 3 or 2
  return multiplot_script(lines, out_base, formats, panels, panels == 3 and 1500 or 1100, 480, title, function()
    lines[#lines + 1] = "set title 'losses'"
    lines[#lines + 1] = "set ylabel 'loss'"
    lines[#lines + 1] = "set logscale y"
    lines[#lines + 1] = "plot " .. table.concat(loss_plots, ", \\\n  ")
    lines[#lines + 1] = "set title 'top-1 accuracy (%)'"
    lines[#lines + 1] = "set ylabel 'accuracy (%)'"
    lines[#lines + 1] = "unset logscale y"
    lines[#lines + 1] = "plot " .. table.concat(acc_plots, ", \\\n  ")
    if panels == 3 then
      lines[#lines + 1] = "set title 'learning rate'"
      lines[#lines + 1] = "set ylabel 'lr'"
      lines[#lines + 1] = "set logscale y"
      lines[#lines + 1] = "plot " .. table.concat(lr_plots, ", \\\n  ")
      lines[#lines + 1] = "unset logscale y"
    end
  end)
end

-- Runs a gnuplot script, kept at script_path (a run's curves.gp, to redraw
-- or adapt) or, without one, in a temporary file removed afterwards.
local function run_gnuplot(script, script_path)
  local gp = plot.gnuplot()
  if not gp then
    return nil, "gnuplot not found (install gnuplot-nox)"
  end
  if not script_path then
    local tmp = os.tmpname()
    local ok, msg = run_gnuplot(script, tmp)
    os.remove(tmp)
    return ok, msg
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
  args.string("plot.curves", 1, run_dir, "a run directory")
  args.table("plot.curves", 2, opts, "an options table or nil", true)
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

-- The base name and formats of an output path: x.svg, x.png, or x (both).
local function outputs_of(out)
  local base, ext = out:match("^(.*)%.(%w+)$")
  if ext == "svg" or ext == "png" then
    return base, { ext }
  end
  return out, { "svg", "png" }
end

-- The distinct groups in order of first appearance, and each run's index.
local function group_order(groups)
  local order, index = {}, {}
  for _, g in ipairs(groups) do
    g = tostring(g)
    if not index[g] then
      order[#order + 1] = g
      index[g] = #order
    end
  end
  return order, index
end

-- A gnuplot datablock named name holding comma-separated rows.
local function datablock(lines, name, rows)
  lines[#lines + 1] = "$" .. name .. " << EOD"
  for _, row in ipairs(rows) do
    local fields = {}
    for i, v in ipairs(row) do
      fields[i] = type(v) == "number" and ("%.12g"):format(v) or tostring(v)
    end
    lines[#lines + 1] = table.concat(fields, ",")
  end
  lines[#lines + 1] = "EOD"
end

-- Per-epoch means of column col over the runs of one group.
local function mean_rows(runs, members, col)
  local sums, counts, epochs = {}, {}, {}
  for _, i in ipairs(members) do
    local run = runs[i]
    local e_col, v_col = column_index(run.header, "epoch"), column_index(run.header, col)
    for _, row in ipairs(e_col and v_col and run.data or {}) do
      local e, v = tonumber(row[e_col]), tonumber(row[v_col])
      if e and v then
        if not sums[e] then
          epochs[#epochs + 1] = e
          sums[e], counts[e] = 0, 0
        end
        sums[e], counts[e] = sums[e] + v, counts[e] + 1
      end
    end
  end
  table.sort(epochs)
  local rows = {}
  for _, e in ipairs(epochs) do
    rows[#rows + 1] = { e, sums[e] / counts[e] }
  end
  return rows
end

-- The grouped overlay: per panel (train loss, test top-1) every run as a
-- thin line in its group's colour, with the group's mean as a thick one.
local function grouped_script(runs, groups, base, formats, title, with_mean)
  local order, index = group_order(groups)
  local members = {}
  for i, g in ipairs(groups) do
    local k = index[tostring(g)]
    members[k] = members[k] or {}
    table.insert(members[k], i)
  end
  local panels = { { col = "train_loss", title = "train loss", ylabel = "loss", log = true },
                   { col = "test_top1", title = "test top-1 accuracy (%)", ylabel = "accuracy (%)" } }
  local lines = { "set datafile separator ','", "set key outside bottom center horizontal", "set grid",
    "set xlabel 'epoch'", "set format x '%g'" }
  if with_mean then
    for k in ipairs(order) do
      for p, panel in ipairs(panels) do
        datablock(lines, ("mean_%d_%d"):format(k, p), mean_rows(runs, members[k], panel.col))
      end
    end
  end
  return multiplot_script(lines, base, formats, #panels, 1100, 520, title, function()
    for p, panel in ipairs(panels) do
      local items = {}
      local titled = {}
      for i, run in ipairs(runs) do
        local k = index[tostring(groups[i])]
        local label = "notitle"
        if not titled[k] and not with_mean then
          titled[k] = true
          label = "title " .. gp_quote(order[k]) .. " noenhanced"
        end
        items[#items + 1] = ("%s using (column('epoch')):(column(%s)) with lines lc rgb '%s' lw %s %s")
          :format(gp_quote(run.csv), gp_quote(panel.col), color(k), with_mean and "0.8 dt 2" or "1.5", label)
      end
      if with_mean then
        for k, name in ipairs(order) do
          items[#items + 1] = ("$mean_%d_%d using 1:2 with linespoints lc rgb '%s' lw 2.5 pt 7 ps 0.6 "
            .. "title %s noenhanced"):format(k, p, color(k), gp_quote(("%s (mean of %d)"):format(name,
            #members[k])))
        end
      end
      lines[#lines + 1] = "set title " .. gp_quote(panel.title)
      lines[#lines + 1] = "set ylabel " .. gp_quote(panel.ylabel)
      lines[#lines + 1] = panel.log and "set logscale y" or "unset logscale y"
      lines[#lines + 1] = "plot " .. table.concat(items, ", \\\n  ")
    end
  end)
end

--- Overlays several runs. out: a .svg or .png path (default
-- "comparison.svg"); both formats are written when out has no extension.
-- opts.groups: a group name per run (e.g. its method): one colour per
-- group, the train loss and test top-1 of every run; opts.mean: the
-- group's mean curve over its runs (the seeds) drawn thick.
function plot.overlay(run_dirs, out, opts)
  args.table("plot.overlay", 1, run_dirs, "a list of run directories")
  args.string("plot.overlay", 2, out, "an output path or nil", true)
  args.table("plot.overlay", 3, opts, "an options table or nil", true)
  opts = opts or {}
  if type(run_dirs) ~= "table" or #run_dirs == 0 then
    return nil, "plot.overlay: expected a list of run directories"
  end
  if opts.groups ~= nil and (type(opts.groups) ~= "table" or #opts.groups ~= #run_dirs) then
    return nil, "plot.overlay: opts.groups must name a group for every run"
  end
  local runs, err = load_runs(run_dirs)
  if not runs then
    return nil, err
  end
  local base, formats = outputs_of(out or "comparison.svg")
  local script, outputs
  if opts.groups then
    for _, run in ipairs(runs) do
      local _, rows = plot.read_csv(run.csv)
      run.data = rows
    end
    script, outputs = grouped_script(runs, opts.groups, base, formats, opts.title or "", opts.mean)
  else
    local labels = {}
    for i, run in ipairs(runs) do
      labels[i] = run.label
    end
    script, outputs = script_for(runs, base, formats, opts.title or table.concat(labels, " vs "))
  end
  local ok, msg = run_gnuplot(script, opts.script)
  if not ok then
    return nil, msg
  end
  return outputs
end

--- A metric against an axis, one line per series with error bars:
-- series = {{label =, points = {{x =, mean =, std =}, ...}}, ...}; x
-- numbers (a log2 axis when they span a factor of 4 or more) or names.
-- opts: xlabel, ylabel, title. Writes out (.svg, .png, or both without an
-- extension); returns the files, or nil and a message.
function plot.metric_vs(series, out, opts)
  args.table("plot.metric_vs", 1, series, "a list of series {label =, points =}")
  args.string("plot.metric_vs", 2, out, "an output path")
  args.table("plot.metric_vs", 3, opts, "an options table or nil", true)
  opts = opts or {}
  if type(series) ~= "table" or #series == 0 then
    return nil, "plot.metric_vs: expected a non-empty list of series {label =, points =}"
  end
  if type(out) ~= "string" or out == "" then
    return nil, "plot.metric_vs: expected an output path"
  end
  local xs, seen, numeric = {}, {}, true
  for _, s in ipairs(series) do
    if type(s.points) ~= "table" then
      return nil, "plot.metric_vs: every series needs points {{x =, mean =, std =}, ...}"
    end
    for _, pt in ipairs(s.points) do
      if type(pt.mean) ~= "number" then
        return nil, "plot.metric_vs: a point without a mean in series " .. tostring(s.label)
      end
      if not seen[pt.x] then
        seen[pt.x] = true
        xs[#xs + 1] = pt.x
      end
      numeric = numeric and type(pt.x) == "number"
    end
  end
  table.sort(xs, function(a, b)
    if numeric then
      return a < b
    end
    return tostring(a) < tostring(b)
  end)
  local position = {}
  for i, x in ipairs(xs) do
    position[x] = numeric and x or i
  end
  local lines = { "set datafile separator ','", "set key outside bottom center horizontal", "set grid",
    "set xlabel " .. gp_quote(opts.xlabel or "x") .. " noenhanced",
    "set ylabel " .. gp_quote(opts.ylabel or "value") .. " noenhanced" }
  local tics = {}
  for _, x in ipairs(xs) do
    tics[#tics + 1] = ("%s %s"):format(gp_quote(tostring(x):gsub("_", " ")), tostring(position[x]))
  end
  lines[#lines + 1] = "set xtics (" .. table.concat(tics, ", ") .. ")"
  if numeric and xs[1] > 0 and xs[#xs] / xs[1] >= 4 then
    lines[#lines + 1] = "set logscale x 2"
    lines[#lines + 1] = ("set xrange [%g:%g]"):format(xs[1] / 1.3, xs[#xs] * 1.3)
  elseif #xs > 0 then
    local lo, hi = position[xs[1]], position[xs[#xs]]
    local pad = math.max((hi - lo) * 0.08, 0.5)
    lines[#lines + 1] = ("set xrange [%g:%g]"):format(lo - pad, hi + pad)
  end
  for k, s in ipairs(series) do
    local rows = {}
    for _, pt in ipairs(s.points) do
      rows[#rows + 1] = { position[pt.x], pt.mean, pt.std or 0 }
    end
    table.sort(rows, function(a, b) return a[1] < b[1] end)
    datablock(lines, "series_" .. k, rows)
  end
  local base, formats = outputs_of(out)
  local outputs = {}
  for _, format in ipairs(formats) do
    lines[#lines + 1] = terminal(format, 800, 520)
    lines[#lines + 1] = "set output " .. gp_quote(base .. "." .. format)
    outputs[#outputs + 1] = base .. "." .. format
    lines[#lines + 1] = "set title " .. gp_quote(opts.title or "") .. " noenhanced"
    local items = {}
    for k, s in ipairs(series) do
      items[#items + 1] = ("$series_%d using 1:2:3 with yerrorlines lc rgb '%s' lw 2 pt 7 "
        .. "title %s noenhanced")
        :format(k, color(k), gp_quote(tostring(s.label)))
    end
    lines[#lines + 1] = "plot " .. table.concat(items, ", \\\n  ")
    lines[#lines + 1] = "set output"
  end
  local ok, msg = run_gnuplot(table.concat(lines, "\n") .. "\n", opts.script)
  if not ok then
    return nil, msg
  end
  return outputs
end

return plot
