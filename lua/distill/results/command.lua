-- distill.results.command: `distill table`, the command-line side of
-- distill.results.
--
--   local command = require "distill.results.command"
--   command.main(args, out, {parse = ..., usage_error = ...}) --> exit code
local command = {}

command.HELP = [[
usage: distill table RUN_OR_SWEEP_DIR... [--rows method] [--cols pair] [--metric best_top1]
                     [--format md|csv] [-o FILE] [--where key=value ...]

Gathers run directories (a sweep's directory is searched recursively) into
a table of mean ± sample std over the runs of each cell, usually the seeds.
By default the FSECD paper's layout: methods as rows (CE, KD, FitNet, AT,
RKD, OFD, CRD, DKD, FSECD, then the others), teacher -> student pairs as
columns. A cell with fewer runs than the fullest cell shows its n; runs
that have not finished are counted as unfinished, not averaged.

options:
  --rows KEYS       row keys, comma-separated (default method): any config key
                    (method, seed, batch_size, optimizer.lr, methods.kd.2.T, ...),
                    pair (teacher -> student), config (its name) or dir
  --cols KEYS       column keys (default pair); e.g. --rows method,pair --cols
                    batch_size for the paper's Table 2
  --metric NAME     a summary.json field: best_top1 (default), last_top1,
                    last_top5, best_epoch, wall_time, ...
  --where key=v[,v] only the runs whose key has one of the values (repeatable)
  --format md|csv   Markdown (default; or from -o's extension) or CSV
  --digits N        decimals in Markdown (default 2)
  -o, --output FILE write the table to FILE]]

local OPTIONS = {
  ["--rows"] = "value", ["--cols"] = "value", ["--metric"] = "value", ["--where"] = "list",
  ["--format"] = "value", ["--digits"] = "value", ["-o"] = "value", ["--output"] = "value",
}

local function key_list(text)
  local keys = {}
  for key in text:gmatch("[^,%s]+") do
    keys[#keys + 1] = key
  end
  return keys
end

function command.main(args, out, tools)
  local options, positional = tools.parse("table", args, OPTIONS)
  if options.help then
    out:write(command.HELP, "\n")
    return 0
  end
  if #positional == 0 then
    tools.usage_error("distill table: expected run or sweep directories\n" .. command.HELP)
  end
  local output = options.o or options.output
  local format = options.format or (output and output:match("%.csv$") and "csv") or "md"
  if format == "markdown" then
    format = "md"
  end
  if format ~= "md" and format ~= "csv" then
    tools.usage_error("distill table: --format takes md or csv, got '" .. format .. "'")
  end
  local digits = math.tointeger(tonumber(options.digits or "2"))
  if not digits or digits < 0 or digits > 10 then
    tools.usage_error("distill table: --digits takes an integer 0..10")
  end
  local rows, cols = key_list(options.rows or "method"), key_list(options.cols or "pair")
  if #rows == 0 or #cols == 0 then
    tools.usage_error("distill table: --rows and --cols need at least one key")
  end
  local results = require "distill.results"
  local runs = results.load(positional, { where = options.where })
  local t = results.aggregate(runs, { rows = rows, cols = cols, metric = options.metric })
  if #t.mixed > 0 then
    local shown = { table.unpack(t.mixed, 1, math.min(#t.mixed, 6)) }
    io.stderr:write(("distill table: warning: cells mix runs that differ in %s%s; add them to "
      .. "--rows/--cols or pick runs with --where\n"):format(table.concat(shown, ", "),
      #t.mixed > #shown and (" and %d more"):format(#t.mixed - #shown) or ""))
  end
  local text = format == "csv" and results.csv(t) or results.markdown(t, { digits = digits })
  if output then
    local f = io.open(output, "w")
    if not f then
      error("distill table: cannot write " .. output, 0)
    end
    f:write(text)
    f:close()
    out:write("wrote ", output, "\n")
  else
    out:write(text)
  end
  return 0
end

return command
