-- distill.files and distill.json: whole files and the JSON of run directories.
local files = require "distill.files"
local json = require "distill.json"
local h = require "support.helpers"

local tmp = os.tmpname()
os.remove(tmp)

describe("distill.files", function()
  it("makes directories, writes, reads and tells what exists", function()
    local dir = tmp .. "/a/b"
    assert.is_false(files.exists(dir))
    files.mkdir(dir)
    assert.is_true(files.exists(dir))
    files.write(dir .. "/x.txt", "one\ntwo\n")
    assert.are.equal("one\ntwo\n", files.read(dir .. "/x.txt"))
    assert.is_false(files.exists(dir .. "/x.txt.tmp"), "the temporary file is renamed")
    files.write(dir .. "/x.txt", "")
    assert.are.equal("", files.read(dir .. "/x.txt"))
    os.execute("rm -rf '" .. tmp .. "'")
  end)

  it("returns nil and the reason for a file it cannot read", function()
    local text, err = files.read(tmp .. "/missing.txt")
    assert.is_nil(text)
    assert.truthy(err:find("missing.txt", 1, true))
  end)

  it("names the function and the problem in its errors", function()
    h.fails("files.write: cannot write", files.write, tmp .. "/no/such/dir/x.txt", "x")
    h.fails("files.write: " .. tmp .. "/x: expected the text (a string), got nil",
      files.write, tmp .. "/x", nil)
    h.fails("files.read: expected a path (a non-empty string), got nil", files.read, nil)
    h.fails("files.exists: expected a path", files.exists, "")
  end)
end)

describe("distill.json", function()
  it("round-trips run records with 14 significant digits", function()
    local record = { epoch = 3, top1 = 71.25, lr = 0.1 / 3, name = "kd", list = { 1, 2 } }
    local back = json.decode(json.encode(record))
    assert.are.equal(3, back.epoch)
    assert.are.equal(71.25, back.top1)
    assert.are.equal(("%.14g"):format(0.1 / 3), ("%.14g"):format(back.lr))
    assert.are.same({ 1, 2 }, back.list)
    assert.are.equal("kd", back.name)
  end)

  it("encodes a sparse array as an object instead of refusing it", function()
    assert.are.same({ ["1"] = 1, ["12"] = 12 }, json.decode(json.encode({ [1] = 1, [12] = 12 })))
  end)

  it("rejects a non-string", function()
    h.fails("json.decode: expected the JSON text (a string), got nil", json.decode, nil)
  end)

  it("reads a JSON file: its value, nil when absent, an error naming a broken one", function()
    files.mkdir(tmp)
    files.write(tmp .. "/s.json", '{"best_top1": 71.5, "epochs": 3}\n')
    assert.are.same({ best_top1 = 71.5, epochs = 3 }, json.read(tmp .. "/s.json"))
    assert.is_nil(json.read(tmp .. "/none.json"))
    files.write(tmp .. "/bad.json", '{"best_top1": ')
    h.fails("json.read: " .. tmp .. "/bad.json is not valid JSON", json.read, tmp .. "/bad.json")
    h.fails("json.read: expected a file path, got nil", json.read, nil)
    os.execute("rm -rf '" .. tmp .. "'")
  end)
end)
