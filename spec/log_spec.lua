-- distill.log's progress bar fits the terminal: never wider than its
-- columns (a wrapped bar prints a new line at every redraw).
local log = require "distill.log"

local FIELDS = { prefix = "", epoch = 12, epochs = 240, done = 151, total = 391, loss = 1.23456,
  acc = 67.5, images_per_s = 1234, eta = "1:02:03" }

describe("log.bar_line", function()
  it("shows every field with a 24-cell bar when there is room", function()
    local line = log.bar_line(120, FIELDS)
    assert.are.equal("epoch 12/240 [=========>              ] 151/391 loss 1.2346 acc 67.50%   1234 img/s ETA 1:02:03", line)
  end)

  it("shrinks the bar, then drops fields, never reaching the last column", function()
    for width = 20, 120 do
      local line = log.bar_line(width, FIELDS)
      assert.is_true(#line <= width - 1, ("%d: %s"):format(width, line))
    end
    local narrow = log.bar_line(72, FIELDS)
    assert.truthy(narrow:find("ETA", 1, true), narrow)
    assert.is_nil(narrow:find("img/s", 1, true), narrow)
    assert.are.equal("epoch 12/240 [===>      ] 151/391 loss 1.2346 ETA 1:02:03", log.bar_line(60, FIELDS))
  end)

  it("checks its arguments", function()
    assert.has_error(function() log.bar_line(0, FIELDS) end,
      "log.bar_line: expected (width: an integer >= 1, fields: a table)")
  end)
end)

describe("log.terminal_width", function()
  it("reads $COLUMNS, else stty, else 80", function()
    local p = io.popen("COLUMNS=97 lua5.4 -e 'package.path=\"./lua/?.lua;\"..package.path; "
      .. "print(require(\"distill.log\").terminal_width())' </dev/null")
    local text = p:read("a")
    p:close()
    assert.are.equal("97\n", text)
    p = io.popen("env -u COLUMNS lua5.4 -e 'package.path=\"./lua/?.lua;\"..package.path; "
      .. "print(require(\"distill.log\").terminal_width())' </dev/null")
    text = p:read("a")
    p:close()
    assert.are.equal("80\n", text)
  end)
end)

describe("a run directory's log.txt and steps.jsonl", function()
  local h = require "support.helpers"
  local files = require "distill.files"

  local sink = h.capture

  local function steps_of(dir)
    local list = {}
    for _, r in ipairs(log.read_metrics(dir .. "/steps.jsonl")) do
      list[#list + 1] = ("%s:%d:%d"):format(r.stage or "main", r.epoch, r.global_step)
    end
    return list
  end

  it("writes every log_steps-th step and the printed lines, a stage's into its parent's files", function()
    local dir = h.tmpdir()
    local logger = log.new(dir, { progress = "none", out = sink(), log_steps = 2, fresh = true,
      header = "first session" })
    local stage = log.new(nil, { progress = "none", out = sink(), parent = logger, stage = "warm",
      label = "stage warm" })
    for global_step = 1, 4 do
      if stage:step_due(global_step) then
        stage:step({ epoch = 1, step = global_step, global_step = global_step, train_loss = 1 })
      end
    end
    for global_step = 1, 6 do
      if logger:step_due(global_step) then
        logger:step({ epoch = (global_step + 2) // 3, step = 1, global_step = global_step, train_loss = 1 })
      end
    end
    logger:print("printed", 3)
    stage:print("from the stage")
    stage:close()   -- a stage's logger leaves its parent's files open
    logger:print("still open")
    logger:close()
    assert.are.same({ "warm:1:2", "warm:1:4", "main:1:2", "main:2:4", "main:2:6" }, steps_of(dir))
    local text = files.read(dir .. "/log.txt")
    assert.truthy(text:match("^== %d+%-%d+%-%d+T[%d:]+Z first session\nprinted 3\nfrom the stage\n"
      .. "still open\n$"), text)
    assert.is_false(log.new(nil, {}):step_due(2), "no run directory: no steps")
    assert.is_false(log.new(h.tmpdir(), { log_steps = 0 }):step_due(2), "log_steps = 0: off")
  end)

  it("on resume drops the steps after the checkpoint and a torn last line, and appends log.txt", function()
    local dir = h.tmpdir()
    files.write(dir .. "/steps.jsonl", table.concat({
      '{"stage":"warm","epoch":1,"global_step":2}', '{"stage":"warm","epoch":2,"global_step":4}',
      '{"epoch":1,"global_step":2}', '{"epoch":2,"global_step":4}', '{"epoch":3,"glo' }, "\n"))
    files.write(dir .. "/log.txt", "earlier session\n")
    local out = sink()
    local logger = log.new(dir, { progress = "lines", out = out, log_steps = 2 })
    logger:resume_at(1, function(name, epoch) return name == "warm" and epoch <= 2 end)
    assert.are.same({ "warm:1:2", "warm:2:4", "main:1:2" }, steps_of(dir))
    assert.truthy(out.text:find("warning: " .. dir .. "/steps.jsonl, line 5, is not a JSON record", 1, true),
      out.text)
    logger:step({ epoch = 2, global_step = 4 })
    logger:close()
    assert.are.same({ "warm:1:2", "warm:2:4", "main:1:2", "main:2:4" }, steps_of(dir))
    assert.truthy(files.read(dir .. "/log.txt"):match("^earlier session\nwarning: "))
    -- resumed inside a stage: only that stage's completed epochs stay
    logger = log.new(dir, {})
    logger:keep_steps(0, function(name, epoch) return name == "warm" and epoch <= 1 end)
    assert.are.same({ "warm:1:2" }, steps_of(dir))
    -- a fresh run starts both files empty
    logger = log.new(dir, { fresh = true })
    logger:close()
    assert.is_false(files.exists(dir .. "/steps.jsonl"))
    assert.are.equal("", files.read(dir .. "/log.txt"))
  end)

  it("checks log.new's arguments", function()
    h.fails("log.new: argument #1: expected a run directory (a string) or nil, got boolean", log.new, true)
    h.fails("log.new: argument #2: expected an options table or nil, got string", log.new, nil, "x")
    h.fails("log.new: log_steps must be an integer >= 0, got -1", log.new, nil, { log_steps = -1 })
    h.fails("log.new: parent must be a logger (log.new's result), got table", log.new, nil, { parent = {} })
    local logger = log.new(nil, { progress = "none" })
    h.fails("Logger:step_due: argument #1: expected the global step (an integer), got nil", logger.step_due, logger)
    h.fails("Logger:step: argument #1: expected the step's record (a table), got number", logger.step, logger, 3)
    h.fails("Logger:write_text: argument #1: expected a line (a string), got nil", logger.write_text, logger)
  end)
end)
