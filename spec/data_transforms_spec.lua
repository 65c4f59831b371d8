local distill = require "distill"
local T = require "distill.data.transforms"
local h = require "support.helpers"

local image = h.uint8_image

local function grid(t) return t:totable() end

describe("data.transforms", function()
  local img = image(1, 4, 5, function(_, y, x) return 10 * y + x + 1 end)

  it("leaves the image uint8 and unchanged without ops", function()
    local out = T.apply(T.compose {}, img)
    assert.equal("uint8", out:dtype())
    assert.same(grid(img), grid(out))
  end)

  it("random_crop with zero padding takes one of the padded crops, exactly", function()
    local seen = {}
    for pos = 1, 200 do
      local out = T.apply(T.random_crop { size = { 4, 5 }, padding = 1 }, img, { seed = 7, position = pos })
      assert.same({ 1, 4, 5 }, out:shape())
      local o = grid(out)[1]
      -- find the offset (dy, dx) in the padded 6 x 7 image that explains it
      local found
      for dy = 0, 2 do
        for dx = 0, 2 do
          local match = true
          for y = 0, 3 do
            for x = 0, 4 do
              local sy, sx = y + dy - 1, x + dx - 1
              local want = (sy >= 0 and sy < 4 and sx >= 0 and sx < 5) and 10 * sy + sx + 1 or 0
              if o[y + 1][x + 1] ~= want then match = false end
            end
          end
          if match then found = dy * 3 + dx end
        end
      end
      assert.is_not_nil(found)
      seen[found] = true
    end
    for k = 0, 8 do assert.is_true(seen[k], "offset " .. k .. " never drawn") end
  end)

  it("random_crop is a pure function of (seed, epoch, position)", function()
    local tf = T.random_crop { size = 3, padding = 2 }
    local a = T.apply(tf, img, { seed = 1, epoch = 2, position = 3 })
    local b = T.apply(tf, img, { seed = 1, epoch = 2, position = 3 })
    assert.same(grid(a), grid(b))
    local differs = false
    for pos = 4, 40 do
      if not (T.apply(tf, img, { seed = 1, epoch = 2, position = pos }) == a) then differs = true end
    end
    assert.is_true(differs)
  end)

  it("horizontal_flip mirrors the columns (p = 1) or keeps them (p = 0)", function()
    local flipped = grid(T.apply(T.horizontal_flip { p = 1 }, img))[1]
    for y = 1, 4 do
      for x = 1, 5 do assert.equal(10 * (y - 1) + (5 - x) + 1, flipped[y][x]) end
    end
    assert.same(grid(img), grid(T.apply(T.horizontal_flip { p = 0 }, img)))
    local n = 0
    for pos = 1, 400 do
      if T.apply(T.horizontal_flip {}, img, { position = pos })[1][1][1] == 5 then n = n + 1 end
    end
    assert.is_true(n > 150 and n < 250, "flipped " .. n .. " of 400")
  end)

  it("to_float divides by 255; normalize maps (x/255 - mean) / std per channel", function()
    local rgb = image(3, 2, 2, function(c, y, x) return 50 * c + 20 * y + x end)
    local f = T.apply(T.to_float, rgb)
    assert.equal("float32", f:dtype())
    assert.near(21 / 255, f[1][2][2], 1e-7)
    local mean, std = { 0.4914, 0.4822, 0.4465 }, { 0.247, 0.243, 0.261 }
    local out = T.apply(T.compose { T.to_float(), T.normalize { mean = mean, std = std } }, rgb)
    local same = T.apply(T.normalize { mean = mean, std = std }, rgb)   -- implies to_float
    for c = 0, 2 do
      for y = 0, 1 do
        for x = 0, 1 do
          local want = ((50 * c + 20 * y + x) / 255 - mean[c + 1]) / std[c + 1]
          assert.near(want, out[c + 1][y + 1][x + 1], 1e-5)
          assert.near(want, same[c + 1][y + 1][x + 1], 1e-5)
        end
      end
    end
  end)

  it("pads with zero pixels before normalising (as torchvision pads before ToTensor)", function()
    local tf = T.compose { T.random_crop { size = { 4, 5 }, padding = 2 }, T.normalize { mean = 0.5, std = 0.25 } }
    local found = false
    for pos = 1, 50 do
      local out = T.apply(tf, img, { position = pos })
      if out[1][1][1] == -2 then found = true end
      for y = 1, 4 do
        for x = 1, 5 do
          local v = out[1][y][x]
          local raw = (v * 0.25 + 0.5) * 255
          assert.near(math.floor(raw + 0.5), raw, 1e-3)   -- an exact pixel value, not a blend
        end
      end
    end
    assert.is_true(found)
  end)

  it("center_crop picks torchvision's offsets and zero-pads when larger", function()
    -- 4 x 5 -> 2 x 2: top = round(1) = 1, left = round(1.5) = 2 (half to even)
    local out = grid(T.apply(T.center_crop { size = 2 }, img))[1]
    assert.same({ { 13, 14 }, { 23, 24 } }, out)
    -- 4 x 5 -> 6 x 7: one zero pixel on each side
    local big = grid(T.apply(T.center_crop { size = { 6, 7 } }, img))[1]
    assert.same({ 0, 0, 0, 0, 0, 0, 0 }, big[1])
    assert.same({ 0, 1, 2, 3, 4, 5, 0 }, big[2])
    assert.same({ 0, 31, 32, 33, 34, 35, 0 }, big[5])
  end)

  local gradient = image(1, 4, 8, function(_, y, x) return 8 * x + 64 * y end)

  it("resize is bilinear with pixel-centre alignment (a gradient stays exact)", function()
    -- shorter side 4 -> 2: 2 x 4, source x = 2 x' + 0.5
    local out = T.apply(T.resize { size = 2 }, gradient)
    assert.same({ 1, 2, 4 }, out:shape())
    assert.same({ { { 36, 52, 68, 84 }, { 164, 180, 196, 212 } } }, grid(out))
    -- upsampling clamps at the border (align_corners = false)
    local small = image(1, 2, 2, function(_, y, x) return 100 * x + 40 * y end)
    local up = grid(T.apply(T.resize { size = { 4, 4 } }, small))[1]
    assert.same({ 0, 25, 75, 100 }, up[1])
    assert.same({ 40, 65, 115, 140 }, up[4])
    assert.same({ 10, 35, 85, 110 }, up[2])
  end)

  it("resize then center_crop equals cropping the resized image", function()
    local out = grid(T.apply(T.compose { T.resize { size = 2 }, T.center_crop { size = 2 } }, gradient))
    assert.same({ { { 52, 68 }, { 180, 196 } } }, out)
    local f = T.apply(T.compose { T.resize { size = 2 }, T.center_crop { size = 2 }, T.to_float }, gradient)
    assert.near(52 / 255, f[1][1][1], 1e-7)
  end)

  it("random_resized_crop: size, identity at scale = ratio = 1, and the center-crop fallback", function()
    local sq = image(1, 8, 8, function(_, y, x) return 8 * y + x end)
    local tf = T.random_resized_crop { size = 8, scale = { 1, 1 }, ratio = { 1, 1 } }
    assert.same(grid(sq), grid(T.apply(tf, sq, { position = 5 })))
    -- 4 x 8, area 32, ratio 1: sqrt(32) rounds to 6 > 4 in all 10 attempts, so
    -- the fallback crops the centred 4 x 4 (columns 2..5)
    local out = grid(T.apply(T.random_resized_crop { size = 4, scale = { 1, 1 }, ratio = { 1, 1 } }, gradient))[1]
    assert.same({ 16, 24, 32, 40 }, out[1])
    assert.same({ 208, 216, 224, 232 }, out[4])
    local rgb = image(3, 30, 40, function(c, y, x) return (c * 50 + y + x) % 256 end)
    local r = T.apply(T.compose { T.random_resized_crop { size = 16 }, T.horizontal_flip {}, T.to_float }, rgb)
    assert.same({ 3, 16, 16 }, r:shape())
    assert.equal("float32", r:dtype())
  end)

  it("validates its options", function()
    local ok, err = pcall(T.apply, T.random_crop { size = 9 }, img)
    assert.is_false(ok)
    assert.matches("crop 9 x 9 is larger than the padded image 4 x 5", err, 1, true)
    ok, err = pcall(T.apply, T.normalize { mean = { 1, 2, 3 }, std = { 1, 1, 1 } }, img)
    assert.is_false(ok)
    assert.matches("3 means and 3 stds for a 1%-channel image", err)
    ok, err = pcall(T.apply, T.normalize { mean = 0, std = 0 }, img)
    assert.is_false(ok)
    assert.matches("std", err)
    ok = pcall(T.random_crop, {})
    assert.is_false(ok)
    ok, err = pcall(T.apply, T.horizontal_flip { p = 2 }, img)
    assert.is_false(ok)
    assert.matches("p must be in", err)
  end)
end)
