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
