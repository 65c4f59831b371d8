-- FT: Kim, Park and Kwak, "Paraphrasing Complex Network: Network
-- Compression via Factor Transfer" (NeurIPS 2018). A paraphraser, a
-- convolutional auto-encoder on the teacher's last block feature, is first
-- trained alone to reconstruct it (the pre-training stage: MSE between the
-- feature and its reconstruction, `stage_loss`); its encoder output is the
-- teacher's "factor". Then a translator (three 3x3 conv + BN + LeakyReLU)
-- maps the student's last block feature to a factor of the same shape,
-- and the loss compares the two as the CRD code base does:
--   factor(f) = normalize(mean_c(f^p1)) (a spatial map per sample)
--   loss = mean |factor(translator(fs)) - factor(encoder(ft))|^p2
-- (maps of different resolution are average-pooled to the smaller one).
-- The paraphraser stays frozen in the main stage: the teacher's factor is
-- computed without gradient and in eval mode. Defaults of the CRD code
-- base: rate 0.5 (factor channels = teacher channels * rate), p1 = 2,
-- p2 = 1, no BN in the paraphraser, BN in the translator, LeakyReLU slope
-- 0.1; published weight 200 after 30 paraphraser epochs (lr 0.01 for
-- ResNet and WRN students).
local distill = require "distill"
local nn = require "distill.nn"
local F = require "distill.functional"
local base = require "distill.distillers.base"

local FT = base.class("FT", { teacher = true, probe = true })

local SLOPE = 0.1

-- conv, BN (or an empty slot, so that parameter names match the reference
-- with and without BN), LeakyReLU, three times.
local function stack(conv, channels, use_bn)
  local layers = nn.Sequential()
  for i = 1, 3 do
    layers:append(conv(channels[i], channels[i + 1], 3, { padding = 1 }))
    layers:append(use_bn and nn.BatchNorm2d(channels[i + 1]) or nn.Identity())
    layers:append(nn.LeakyReLU(SLOPE))
  end
  return layers
end

local function last_block(out, who)
  local feats = out and out.feats
  local f = type(feats) == "table" and feats[#feats - 1]
  if not distill.is_tensor(f) or f:dim() ~= 4 then
    error(("distillers.ft: %s's last block feature (feats[#feats - 1]) must be a 4-d tensor")
      :format(who), 3)
  end
  return f
end

--- ft{probe = {student =, teacher =}, rate = 0.5, p1 = 2, p2 = 1,
---    paraphraser_bn = false, translator_bn = true}
function FT:init(opts, given)
  local probe = base.probe("ft", opts, given)
  self.options = base.options("ft", opts, {
    rate = 0.5, p1 = 2, p2 = 1, paraphraser_bn = false, translator_bn = true,
  }, { rate = "positive", p1 = "positive", p2 = "positive", paraphraser_bn = "boolean",
       translator_bn = "boolean" })
  local o = self.options
  local s_channels = last_block(probe.student, "the student"):size(2)
  local t_channels = last_block(probe.teacher, "the teacher"):size(2)
  local factor = math.floor(t_channels * o.rate)
  if factor < 1 then
    error(("distillers.ft: rate %g leaves no factor channels of the teacher's %d")
      :format(o.rate, t_channels), 2)
  end
  self.factor_channels = factor
  self.paraphraser = nn.ModuleDict{
    encoder = stack(nn.Conv2d, { t_channels, t_channels, factor, factor }, o.paraphraser_bn),
    decoder = stack(nn.ConvTranspose2d, { factor, factor, t_channels, t_channels }, o.paraphraser_bn),
  }
  self.translator = stack(nn.Conv2d, { s_channels, s_channels, factor, factor }, o.translator_bn)
end

--- The paraphraser's reconstruction loss on the teacher's last block
-- feature: the pre-training stage's objective (distill.stages).
function FT:stage_loss(_, teacher_out)
  local target = last_block(teacher_out, "the teacher"):detach()
  local paraphraser = self.paraphraser
  return F.mse_loss(paraphraser.decoder(paraphraser.encoder(target)), target)
end

local function factor_map(f, p)
  return F.normalize(f:pow(p):mean(2):view{ f:size(1), -1 }, { dim = 2 })
end

function FT:loss(student_out, teacher_out)
  local o = self.options
  local factor_s = self.translator(last_block(student_out, "the student"))
  local encoder = self.paraphraser.encoder
  local was_training = encoder.training
  encoder:eval()
  local factor_t = distill.no_grad(function()
    return encoder(last_block(teacher_out, "the teacher"))
  end)
  encoder:train(was_training)
  if factor_s:size(2) ~= factor_t:size(2) then
    error(("distillers.ft: the translator gives %d factor channels and the paraphraser %d")
      :format(factor_s:size(2), factor_t:size(2)), 2)
  end
  if factor_s:size(3) > factor_t:size(3) then
    factor_s = F.adaptive_avg_pool2d(factor_s, { factor_t:size(3), factor_t:size(4) })
  elseif factor_s:size(3) < factor_t:size(3) then
    factor_t = F.adaptive_avg_pool2d(factor_t, { factor_s:size(3), factor_s:size(4) })
  end
  local diff = factor_map(factor_s, o.p1) - factor_map(factor_t, o.p1)
  if o.p2 == 1 then
    return diff:abs():mean()
  end
  return diff:pow(o.p2):mean()
end

return FT
