-- distill.data.idx: datasets stored as IDX image + label files (MNIST and
-- Fashion-MNIST), plain or gzip'ed.
local core = require "distill.core"
local dataset = require "distill.data.dataset"
local files = require "distill.files"

local idx = {}

local function pick(dir, base)
  for _, name in ipairs { base, base .. ".gz" } do
    if files.exists(dir .. "/" .. name) then return dir .. "/" .. name end
  end
  return nil
end

--- A dataset constructor for one IDX family: spec = {name=, default_root=, classes=}.
function idx.family(spec)
  local function open(opts)
    local fn = spec.name
    opts = opts or {}
    if type(opts) ~= "table" then error(fn .. ": expected an options table", 2) end
    local root = opts.root or spec.default_root
    local split = opts.split or "train"
    if split ~= "train" and split ~= "test" then
      error(("%s: split must be \"train\" or \"test\", got %s"):format(fn, tostring(split)), 2)
    end
    local prefix = split == "train" and "train" or "t10k"
    local ifile = pick(root, prefix .. "-images-idx3-ubyte")
    local lfile = pick(root, prefix .. "-labels-idx1-ubyte")
    if not ifile or not lfile then
      error(("%s: %s-images-idx3-ubyte and %s-labels-idx1-ubyte (or .gz) not found in %s "
        .. "(missing directory?)"):format(fn, prefix, prefix, root), 2)
    end
    local ok, images, labels = pcall(core.dataio.read_idx_pair, ifile, lfile)
    if not ok then error(fn .. ": " .. tostring(images):gsub("^dataio%.read_idx_pair: ", ""), 2) end
    local ds = dataset.in_memory(fn, images, labels, spec.classes)
    ds.split, ds.root = split, root
    return ds
  end
  return setmetatable({ open = open, classes = spec.classes }, {
    __call = function(_, opts) return open(opts) end,
  })
end

return idx
