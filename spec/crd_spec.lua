-- CRD's memory-bank kernels (engine/contrast/crd.c): the scores of the named
-- bank rows and their gradient on each of the kernel's paths, and the bank
-- update. Also run on the sanitizer build (spec/sanitizer_spec.lua).
local distill = require "distill"

local function close(expected, actual, tol)
  tol = tol or 1e-4
  assert.is_true(math.abs(expected - actual) <= tol * math.max(1, math.abs(expected)),
    ("expected %.8g, got %.8g"):format(expected, actual))
end

describe("crd_scores and crd_update_bank_", function()
  local T = 0.5

  -- exp(bank[idx[b][k]] . v[b] / T) in double precision
  local function plain_scores(bank, idx, v)
    local out = {}
    for b = 1, idx:size(1) do
      out[b] = {}
      for k = 1, idx:size(2) do
        local row, dot = idx[b][k], 0
        for j = 1, v:size(2) do
          dot = dot + bank[row][j] * v[b][j]
        end
        out[b][k] = math.exp(dot / T)
      end
    end
    return out
  end

  -- D = 37: two full 16-lane blocks and a tail; indices and embeddings are
  -- transposed views (not contiguous), and sample 1 names one row twice.
  -- The bank sizes take each path of the kernel: banks small against the
  -- rows named per sample (multiplied whole), and one much larger (rows
  -- read one by one).
  local function make_inputs(bank_rows, named)
    return function()
      distill.manual_seed(7)
      local bank = distill.randn { bank_rows, 37 } * 0.2
      local idx = distill.randint(1, bank_rows + 1, { named, 3 })
      idx[2][1] = idx[1][1]
      idx = idx:t()
      local v = (distill.randn { 37, 3 } * 0.2):t()
      assert.is_false(idx:is_contiguous())
      assert.is_false(v:is_contiguous())
      return bank, idx, v
    end
  end
  local inputs = make_inputs(10, 5)

  for _, case in ipairs {
    { "a bank small against the rows named", inputs, 5 },
    { "a bank naming most rows several times", make_inputs(300, 40), 40 },
    { "a bank much larger than the rows named", make_inputs(2000, 5), 5 },
  } do
    local what, case_inputs, named = case[1], case[2], case[3]

    it("match a plain computation for non-contiguous indices and embeddings: " .. what, function()
      local bank, idx, v = case_inputs()
      local out = distill.crd_scores(bank, idx, v, T)
      local expected = plain_scores(bank, idx, v)
      assert.are.same({ 3, named }, out:shape())
      for b = 1, 3 do
        for k = 1, named do
          close(expected[b][k], out[b][k], 1e-5)
        end
      end
      assert.are.same(out:totable(), distill.crd_scores(bank, idx:contiguous(), v:contiguous(), T):totable())
    end)

    it("give v the gradient of a broadcast grad_out (the backward of sum): " .. what, function()
      local bank, idx, v0 = case_inputs()
      local v = v0:contiguous()
      v.requires_grad = true
      local out = distill.crd_scores(bank, idx, v, T)
      out:sum():backward()
      -- d/dv[b] sum_k out[b][k] = sum_k out[b][k] / T * bank[idx[b][k]]
      local scores = plain_scores(bank, idx, v0)
      for b = 1, 3 do
        for j = 1, 37 do
          local g = 0
          for k = 1, named do
            g = g + scores[b][k] / T * bank[idx[b][k]][j]
          end
          close(g, v.grad[b][j], 1e-4)
        end
      end
    end)

    it("pass gradcheck with respect to v: " .. what, function()
      local gradcheck = require "distill.gradcheck"
      local bank, idx, v0 = case_inputs()
      local v = v0:contiguous()
      v.requires_grad = true
      assert.is_true(gradcheck.gradcheck(function(x)
        return distill.crd_scores(bank, idx, x, T)
      end, { v }))
    end)
  end

  it("reject an out-of-range index in a non-contiguous index tensor", function()
    local bank, idx, v = inputs()
    local bad = idx:t():contiguous()
    bad[2][3] = 11
    local ok, err = pcall(distill.crd_scores, bank, bad:t(), v, T)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bank index 11 out of range for a bank of 10 rows", 1, true))
  end)

  it("update the bank from non-contiguous embeddings as a plain computation does", function()
    local bank, _, v = inputs()
    local rows = distill.tensor { 4, 9, 4 }
    local m = 0.5
    local expected = bank:clone():totable()
    for i = 1, 3 do
      local r, sq = rows[i], 0
      for j = 1, 37 do
        expected[r][j] = m * expected[r][j] + (1 - m) * v[i][j]
        sq = sq + expected[r][j] ^ 2
      end
      for j = 1, 37 do
        expected[r][j] = expected[r][j] / math.sqrt(sq)
      end
    end
    distill.crd_update_bank_(bank, rows, v, m)
    for _, r in ipairs { 1, 4, 9 } do
      for j = 1, 37 do
        close(expected[r][j], bank[r][j], 1e-5)
      end
    end
  end)
end)
