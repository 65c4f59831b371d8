-- distill.data.image_folder: root/<class>/<image>.jpg (the ImageNet
-- train/val layout), walked with LuaFileSystem.
--   image_folder{root = dir, on_error = "error" | "skip", verify = true}
-- Classes are the sub-directories of root sorted by bytes (as torchvision's
-- sorted()); files are found recursively in sorted order; .jpg/.jpeg in any
-- case are images (other files are ignored). With verify (the default)
-- every file's JPEG header is checked at construction: on_error = "error"
-- raises naming the file, "skip" warns on stderr, drops it and counts it in
-- ds.skipped. Files that fail later while loading follow the same option.
local core = require "distill.core"
local lfs = require "lfs"

local ImageFolder = {}
ImageFolder.__index = ImageFolder
ImageFolder.__len = function(self) return self.n end

local function byte_less(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = a:byte(i), b:byte(i)
    if x ~= y then return x < y end
  end
  return #a < #b
end

local function sorted_entries(dir)
  local names = {}
  local ok, err = pcall(function()
    for name in lfs.dir(dir) do
      if name ~= "." and name ~= ".." then names[#names + 1] = name end
    end
  end)
  if not ok then error(("image_folder: cannot read directory %s (%s)"):format(dir, tostring(err)), 0) end
  table.sort(names, byte_less)
  return names
end

local function is_image(name)
  local ext = name:match("%.([^./]+)$")
  ext = ext and ext:lower()
  return ext == "jpg" or ext == "jpeg"
end

-- The physical path of a directory (symlinks resolved), by asking the
-- kernel from inside it.
local function real_path(dir)
  local here = lfs.currentdir()
  if not lfs.chdir(dir) then
    return nil
  end
  local real = lfs.currentdir()
  lfs.chdir(here)
  return real
end

local function inside(path, dir)
  return path == dir or path:sub(1, #dir + 1) == dir .. "/"
end

-- Files under dir, recursively, in sorted order. Directory symlinks are
-- followed only inside the dataset root (or the class folder, which may
-- itself be a link elsewhere) and into a directory
-- not visited yet (device and inode), so a link to `.` or `..` cannot
-- loop or list the same images twice; a link that leaves the root is
-- skipped with a warning.
local function walk(dir, out, walk_state)
  for _, name in ipairs(sorted_entries(dir)) do
    local path = dir .. "/" .. name
    local attr = lfs.attributes(path)
    local mode = attr and attr.mode
    if mode == "directory" then
      local key = attr.dev .. ":" .. attr.ino
      local link = lfs.symlinkattributes(path, "mode") == "link"
      local real = link and real_path(path)
      if link and not (real and (inside(real, walk_state.root) or inside(real, walk_state.class))) then
        io.stderr:write(("warning: image_folder: not following %s: it links out of %s\n"):format(path,
          walk_state.root))
      elseif not walk_state.seen[key] then
        walk_state.seen[key] = true
        walk(path, out, walk_state)
      end
    elseif mode == "file" and is_image(name) then
      out[#out + 1] = path
    end
  end
end

local function new(opts)
  if type(opts) == "string" then opts = { root = opts } end
  if type(opts) ~= "table" or type(opts.root) ~= "string" then
    error("image_folder: expected {root = dir, ...}", 2)
  end
  local root = opts.root:gsub("/+$", "")
  local on_error = opts.on_error or "error"
  if on_error ~= "error" and on_error ~= "skip" then
    error(("image_folder: on_error must be \"error\" or \"skip\", got %s"):format(tostring(on_error)), 2)
  end
  if lfs.attributes(root, "mode") ~= "directory" then
    error(("image_folder: root directory %s not found"):format(root), 2)
  end
  local real_root = real_path(root) or root
  local classes = {}
  for _, name in ipairs(sorted_entries(root)) do
    if lfs.attributes(root .. "/" .. name, "mode") == "directory" then classes[#classes + 1] = name end
  end
  if #classes == 0 then error(("image_folder: no class folders in %s"):format(root), 2) end
  -- every folder is listed once, under one class: the class folders first
  local seen = {}
  for _, class in ipairs(classes) do
    local attr = lfs.attributes(root .. "/" .. class)
    seen[attr.dev .. ":" .. attr.ino] = true
  end

  local paths, labels, skipped = {}, {}, 0
  local class_to_idx = {}
  for ci, class in ipairs(classes) do
    class_to_idx[class] = ci
    local files = {}
    local class_dir = root .. "/" .. class
    walk(class_dir, files, { root = real_root, class = real_path(class_dir) or class_dir, seen = seen })
    if #files == 0 then
      error(("image_folder: class folder %s/%s is empty (no .jpg/.jpeg files)"):format(root, class), 2)
    end
    for _, path in ipairs(files) do
      local ok, err = true, nil
      if opts.verify ~= false then ok, err = core.dataio.check_jpeg(path) end
      if ok then
        paths[#paths + 1] = path
        labels[#labels + 1] = ci
      elseif on_error == "skip" then
        skipped = skipped + 1
        io.stderr:write(("warning: image_folder: skipping %s\n"):format(err))
      else
        error("image_folder: " .. err, 2)
      end
    end
  end
  if #paths == 0 then error(("image_folder: no readable images in %s"):format(root), 2) end
  local label_tensor = core.tensor(labels, "int64")
  return setmetatable({
    root = root,
    classes = classes,
    class_to_idx = class_to_idx,
    paths = paths,
    labels = label_tensor,
    n = #paths,
    skipped = skipped,
    on_error = on_error,
    source = { paths = paths, labels = label_tensor, on_error = on_error },
  }, ImageFolder)
end

--- {input = 3 x H x W uint8, target = class (1-based), index = i}
function ImageFolder:get(i)
  if math.type(i) ~= "integer" or i < 1 or i > self.n then
    error(("image_folder:get: index %s out of range 1..%d"):format(tostring(i), self.n), 2)
  end
  local ok, img = pcall(core.dataio.read_jpeg, self.paths[i])
  if not ok then error("image_folder: " .. tostring(img):gsub("^dataio%.read_jpeg: ", ""), 2) end
  return { input = img, target = self.labels[i], index = i }
end

function ImageFolder:__tostring()
  return ("image_folder(%s: %d images, %d classes)"):format(self.root, self.n, #self.classes)
end

return setmetatable({ new = new }, { __call = function(_, opts) return new(opts) end })
