-- CIFAR "python version" batches, byte for byte as their publishers wrote
-- them: Python 2's cPickle, protocol 2, of a dict of str keys, the images a
-- NumPy uint8 array (numpy.core.multiarray._reconstruct, then the array's
-- state with a numpy.dtype('u1') and the raw bytes as a BINSTRING), the
-- labels lists of small ints appended in batches of 1000, every value
-- memoized with BINPUT/LONG_BINPUT.
local M = {}

local function writer()
  local parts, memo = {}, 0
  local w = {}
  function w.raw(s) parts[#parts + 1] = s end
  function w.put()
    memo = memo + 1
    if memo < 256 then w.raw("q" .. string.char(memo)) else w.raw("r" .. string.pack("<I4", memo)) end
  end
  function w.str(s)
    if #s < 256 then w.raw("U" .. string.char(#s) .. s) else w.raw("T" .. string.pack("<i4", #s) .. s) end
    w.put()
  end
  function w.int(v)
    if v < 256 then w.raw("K" .. string.char(v))
    elseif v < 65536 then w.raw("M" .. string.pack("<I2", v))
    else w.raw("J" .. string.pack("<i4", v)) end
  end
  function w.list(values, emit)
    w.raw("]"); w.put()
    for i = 1, #values, 1000 do
      w.raw("(")
      for k = i, math.min(i + 999, #values) do emit(values[k]) end
      w.raw("e")
    end
  end
  function w.bytes() return table.concat(parts) end
  return w
end

--- The pickle bytes of one batch. opts: n (images), pixel(k, i) -> byte
--- (image k, byte i of its 3072, 0-based), labels = {[key] = {values}},
--- batch_label (string). Dict entries in the order the published files have.
function M.batch(opts)
  local w = writer()
  w.raw("\128\002}"); w.put(); w.raw("(")
  w.str("data")
  w.raw("cnumpy.core.multiarray\n_reconstruct\n"); w.put()
  w.raw("cnumpy\nndarray\n"); w.put()
  w.int(0); w.raw("\133"); w.put()
  w.str("b")
  w.raw("\135"); w.put(); w.raw("R"); w.put()
  w.raw("("); w.int(1); w.int(opts.n); w.int(3072); w.raw("\134"); w.put()
  w.raw("cnumpy\ndtype\n"); w.put()
  w.str("u1"); w.int(0); w.int(1); w.raw("\135"); w.put(); w.raw("R"); w.put()
  w.raw("("); w.int(3); w.str("|")
  w.raw("NNNJ\255\255\255\255J\255\255\255\255K\000tb")
  w.raw("\137")
  local pix = {}
  for k = 0, opts.n - 1 do
    local bytes = {}
    for i = 0, 3071 do bytes[i + 1] = string.char(opts.pixel(k, i)) end
    pix[#pix + 1] = table.concat(bytes)
  end
  local data = table.concat(pix)
  w.raw("T" .. string.pack("<i4", #data) .. data); w.put()
  w.raw("tb")
  for _, key in ipairs(opts.label_order or {}) do
    w.str(key)
    w.list(opts.labels[key], w.int)
  end
  w.str("batch_label"); w.str(opts.batch_label or "training batch 1 of 1")
  w.str("filenames")
  local names = {}
  for k = 1, opts.n do names[k] = ("image_%05d.png"):format(k) end
  w.list(names, w.str)
  w.raw("u.")
  return w.bytes()
end

--- The pickle bytes of a meta file (batches.meta / meta): a dict of lists
--- of label names, keys in the given order ({{"fine_label_names", {...}}, ...}).
function M.meta(lists)
  local w = writer()
  w.raw("\128\002}"); w.put(); w.raw("(")
  for _, entry in ipairs(lists) do
    w.str(entry[1])
    w.list(entry[2], w.str)
  end
  w.raw("u.")
  return w.bytes()
end

return M
