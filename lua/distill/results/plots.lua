-- distill.results.plots: the figures of a sweep, for `distill plot`:
-- every run's curves with one colour per method (or any key), optionally
-- with the mean over the seeds, and a metric against an axis (best top-1
-- against batch size, one line per method, error bars over the seeds).
--
--   local plots = require "distill.results.plots"
--   plots.curves({"runs/fmnist_table3"}, {by = "method", mean = true, output = "cmp"})
--   plots.versus({"runs/fmnist_table2"}, {vs = "batch_size", metric = "best_top1"})
-- Both return the files written, or nil and a message (as distill.plot).
local results = require "distill.results"
local plot = require "distill.plot"
local files = require "distill.files"

local plots = {}

local function title_of(paths)
  return table.concat(paths, ", ")
end

--- Overlaid curves of the runs under paths, coloured by opts.by (default
-- method); opts.mean adds each group's mean curve; opts.where selects runs.
function plots.curves(paths, opts)
  opts = opts or {}
  local by = opts.by or "method"
  local runs = results.load(paths, { where = opts.where })
  local started = {}
  for _, run in ipairs(runs) do
    if files.exists(run.dir .. "/metrics.csv") then
      started[#started + 1] = run
    end
  end
  if #started == 0 then
    return nil, "no run under " .. title_of(paths) .. " has finished an epoch yet"
  end
  for _, run in ipairs(started) do
    run.group = results.value(run, by)
  end
  table.sort(started, function(a, b)
    if a.group ~= b.group then
      if a.group == nil or b.group == nil then
        return b.group == nil
      end
      return results.before(by, a.group, b.group)
    end
    return a.dir < b.dir
  end)
  local dirs, groups = {}, {}
  for i, run in ipairs(started) do
    dirs[i], groups[i] = run.dir, results.label(by, run.group)
  end
  return plot.overlay(dirs, opts.output or "comparison", { groups = groups, mean = opts.mean,
    script = opts.script,
    title = ("%s: one colour per %s%s"):format(title_of(paths), by, opts.mean and ", mean over runs" or "") })
end

--- opts.metric (default best_top1) of the runs under paths against the
-- config key opts.vs, one line per value of opts.by (default method):
-- mean and sample std over the runs (seeds) of each point.
function plots.versus(paths, opts)
  opts = opts or {}
  if type(opts.vs) ~= "string" then
    return nil, "plots.versus: expected opts.vs, the config key of the x axis"
  end
  local by, metric = opts.by or "method", opts.metric or "best_top1"
  local t = results.aggregate(results.load(paths, { where = opts.where }),
    { rows = { by }, cols = { opts.vs }, metric = metric })
  local series = {}
  for r, row in ipairs(t.rows) do
    local points = {}
    for c, col in ipairs(t.cols) do
      local cell = t.cells[r][c]
      if cell.n > 0 and col.values[1] ~= nil then
        points[#points + 1] = { x = col.values[1], mean = cell.mean, std = cell.std }
      end
    end
    if #points > 0 then
      series[#series + 1] = { label = row.labels[1], points = points }
    end
  end
  if #series == 0 then
    return nil, ("no finished run under %s has %s"):format(title_of(paths), opts.vs)
  end
  return plot.metric_vs(series, opts.output or (metric .. "_vs_" .. opts.vs:gsub("%W", "_")), {
    xlabel = opts.vs, ylabel = metric, script = opts.script, title = ("%s vs %s (%s; mean ± std over runs)"):format(metric,
      opts.vs, title_of(paths)) })
end

return plots
