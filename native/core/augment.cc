#include "augment.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "errors.h"

namespace siamese::core {

namespace {

constexpr double kPi = 3.14159265358979323846;
double radians(double degrees) { return degrees * (kPi / 180); }

// Uniform in [0, 1) from the top 53 bits' worth of one bounded draw: exact doubles, the same everywhere
// (std::uniform_real_distribution and std::generate_canonical are not pinned by the standard).
double unit(Rng& rng) { return static_cast<double>(rng.below(uint64_t{1} << 53)) * 0x1p-53; }
double uniform(Rng& rng, double lo, double hi) { return lo + (hi - lo) * unit(rng); }

// A 2D affine map [a b c; d e f]: (x, y) -> (a x + b y + c, d x + e y + f).
struct Affine {
  double a = 1, b = 0, c = 0, d = 0, e = 1, f = 0;
};

// outer after inner: the map x -> outer(inner(x)).
Affine then(const Affine& inner, const Affine& outer) {
  return {outer.a * inner.a + outer.b * inner.d,           outer.a * inner.b + outer.b * inner.e,
          outer.a * inner.c + outer.b * inner.f + outer.c, outer.d * inner.a + outer.e * inner.d,
          outer.d * inner.b + outer.e * inner.e,           outer.d * inner.c + outer.e * inner.f + outer.f};
}

void require(bool ok, const char* field, const char* range, double value) {
  // Written as require(in range) so that NaN, which fails every comparison, is rejected too.
  if (!ok) {
    throw InvalidArgumentError(std::string("augment config: ") + field + " must be " + range + ", got " +
                               std::to_string(value));
  }
}

bool cropOn(const AugmentConfig& c) { return c.cropScaleMin != 1 || c.cropScaleMax != 1; }

// torchvision's RandomResizedCrop.get_params, with Python's round (half to even: std::nearbyint in the default
// rounding mode) and its draw order: area, log ratio, then top, then left.
void drawCrop(const AugmentConfig& c, int64_t height, int64_t width, Rng& rng, augmentation::AffineParams& out) {
  const double area = static_cast<double>(height) * static_cast<double>(width);
  const double logRatioMin = std::log(c.ratioMin), logRatioMax = std::log(c.ratioMax);
  int64_t top = 0, left = 0, h = height, w = width;
  bool found = false;
  for (int attempt = 0; attempt < 10 && !found; ++attempt) {
    const double target = area * uniform(rng, c.cropScaleMin, c.cropScaleMax);
    const double ratio = std::exp(uniform(rng, logRatioMin, logRatioMax));
    const auto tryW = static_cast<int64_t>(std::nearbyint(std::sqrt(target * ratio)));
    const auto tryH = static_cast<int64_t>(std::nearbyint(std::sqrt(target / ratio)));
    if (0 < tryW && tryW <= width && 0 < tryH && tryH <= height) {
      w = tryW;
      h = tryH;
      top = rng.between(0, height - h);
      left = rng.between(0, width - w);
      found = true;
    }
  }
  if (!found) {
    // The central crop, of the nearest allowed aspect ratio.
    const double inRatio = static_cast<double>(width) / static_cast<double>(height);
    if (inRatio < c.ratioMin) {
      h = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(static_cast<double>(width) / c.ratioMin)));
    } else if (inRatio > c.ratioMax) {
      w = std::max<int64_t>(1, static_cast<int64_t>(std::nearbyint(static_cast<double>(height) * c.ratioMax)));
    }
    top = (height - h) / 2;
    left = (width - w) / 2;
  }
  out.cropLeft = static_cast<double>(left) / static_cast<double>(width);
  out.cropTop = static_cast<double>(top) / static_cast<double>(height);
  out.cropWidth = static_cast<double>(w) / static_cast<double>(width);
  out.cropHeight = static_cast<double>(h) / static_cast<double>(height);
}

void checkBatch(const torch::Tensor& batch) {
  TORCH_CHECK(batch.dim() == 4 && batch.scalar_type() == torch::kFloat && (batch.size(1) == 1 || batch.size(1) == 3),
              "augment: batch must be float32 [B, C, H, W] with C = 1 or 3");
}

}  // namespace

bool AugmentConfig::enabled() const {
  return cropOn(*this) || flip || rotate != 0 || translate != 0 || scaleMin != 1 || scaleMax != 1 || shear != 0 ||
         brightness != 0 || contrast != 0;
}

void checkAugmentConfig(const AugmentConfig& c) {
  require(c.cropScaleMin > 0 && c.cropScaleMin <= 1, "cropScaleMin", "in (0, 1]", c.cropScaleMin);
  require(c.cropScaleMax >= c.cropScaleMin && c.cropScaleMax <= 1, "cropScaleMax", "in [cropScaleMin, 1]",
          c.cropScaleMax);
  // Finite because their logs are drawn from.
  require(c.ratioMin > 0 && std::isfinite(c.ratioMin), "ratioMin", "finite and > 0", c.ratioMin);
  require(c.ratioMax >= c.ratioMin && std::isfinite(c.ratioMax), "ratioMax", "finite and >= ratioMin", c.ratioMax);
  require(c.rotate >= 0 && c.rotate <= 180, "rotate", "in [0, 180]", c.rotate);
  require(c.translate >= 0 && c.translate <= 1, "translate", "in [0, 1]", c.translate);
  require(c.scaleMin > 0 && c.scaleMin <= 10, "scaleMin", "in (0, 10]", c.scaleMin);
  require(c.scaleMax >= c.scaleMin && c.scaleMax <= 10, "scaleMax", "in [scaleMin, 10]", c.scaleMax);
  require(c.shear >= 0 && c.shear < 90, "shear", "in [0, 90)", c.shear);
  require(c.brightness >= 0 && c.brightness <= 1, "brightness", "in [0, 1]", c.brightness);
  require(c.contrast >= 0 && c.contrast <= 1, "contrast", "in [0, 1]", c.contrast);
}

namespace augmentation {

bool AffineParams::identity() const {
  return cropLeft == 0 && cropTop == 0 && cropWidth == 1 && cropHeight == 1 && !flip && angle == 0 && translateX == 0 &&
         translateY == 0 && scale == 1 && shear == 0;
}

std::array<double, 6> affineFor(const AffineParams& p, int64_t height, int64_t width) {
  // grid_sample wants, for each output pixel, where to read in the input: the inverse of the forward ops,
  // composed output-side first. They are composed in pixel units about the image centre (u = x W / 2,
  // v = y H / 2), where a rotation is a rotation whatever the aspect ratio; normalised coordinates stretch
  // x and y differently on a non-square image.
  const double w = static_cast<double>(width), h = static_cast<double>(height);
  Affine m{w / 2, 0, 0, 0, h / 2, 0};  // normalised -> pixels about the centre
  // Undo the translation.
  m = then(m, Affine{1, 0, -p.translateX * w, 0, 1, -p.translateY * h});
  // Undo the rotation. Forward, counter-clockwise as displayed with y down: (u, v) -> (u cos + v sin,
  // -u sin + v cos); its inverse is the transpose.
  const double cosA = std::cos(radians(p.angle)), sinA = std::sin(radians(p.angle));
  m = then(m, Affine{cosA, -sinA, 0, sinA, cosA, 0});
  // Undo the zoom, then the shear (forward u' = u - tan(s) v).
  m = then(m, Affine{1 / p.scale, 0, 0, 0, 1 / p.scale, 0});
  m = then(m, Affine{1, std::tan(radians(p.shear)), 0, 0, 1, 0});
  // Undo the flip: mirroring about the centre maps pixel centre j to W - 1 - j exactly.
  if (p.flip) m = then(m, Affine{-1, 0, 0, 0, 1, 0});
  // Undo the crop: the whole output spans the box, whose centre is (left + width / 2) - 1/2 of the image.
  m = then(m, Affine{p.cropWidth, 0, (p.cropLeft + p.cropWidth / 2 - 0.5) * w, 0, p.cropHeight,
                     (p.cropTop + p.cropHeight / 2 - 0.5) * h});
  m = then(m, Affine{2 / w, 0, 0, 0, 2 / h, 0});  // back to normalised
  return {m.a, m.b, m.c, m.d, m.e, m.f};
}

ImageParams drawParams(const AugmentConfig& config, int64_t height, int64_t width, Rng& rng) {
  ImageParams params;
  AffineParams& g = params.geometry;
  if (cropOn(config)) drawCrop(config, height, width, rng, g);
  if (config.flip) g.flip = rng.below(2) == 1;
  if (config.rotate != 0) g.angle = uniform(rng, -config.rotate, config.rotate);
  if (config.translate != 0) {
    g.translateX = uniform(rng, -config.translate, config.translate);
    g.translateY = uniform(rng, -config.translate, config.translate);
  }
  if (config.scaleMin != 1 || config.scaleMax != 1) g.scale = uniform(rng, config.scaleMin, config.scaleMax);
  if (config.shear != 0) g.shear = uniform(rng, -config.shear, config.shear);
  if (config.brightness != 0) params.brightness = uniform(rng, 1 - config.brightness, 1 + config.brightness);
  if (config.contrast != 0) params.contrast = uniform(rng, 1 - config.contrast, 1 + config.contrast);
  return params;
}

torch::Tensor resample(const torch::Tensor& batch, const torch::Tensor& theta) {
  namespace F = torch::nn::functional;
  const auto grid = F::affine_grid(theta.to(batch.options()), batch.sizes(), /*align_corners=*/false);
  return F::grid_sample(
      batch, grid, F::GridSampleFuncOptions().mode(torch::kBilinear).padding_mode(torch::kZeros).align_corners(false));
}

torch::Tensor applyParams(const torch::Tensor& batch, const std::vector<ImageParams>& params) {
  checkBatch(batch);
  const int64_t b = batch.size(0), h = batch.size(2), w = batch.size(3);
  TORCH_CHECK(static_cast<int64_t>(params.size()) == b, "augment: one ImageParams per image");
  bool geometric = false, bright = false, contrast = false;
  for (const ImageParams& p : params) {
    geometric = geometric || !p.geometry.identity();
    bright = bright || p.brightness != 1;
    contrast = contrast || p.contrast != 1;
  }
  torch::Tensor out;
  if (geometric) {
    auto theta = torch::empty({b, 2, 3}, torch::kDouble);
    auto* t = theta.data_ptr<double>();
    for (int64_t i = 0; i < b; ++i) {
      const auto m = affineFor(params[static_cast<size_t>(i)].geometry, h, w);
      std::copy(m.begin(), m.end(), t + 6 * i);
    }
    // Bilinear weights sum to at most 1, but in float they can overshoot 255 by an ulp.
    out = resample(batch, theta).clamp_(0, 255);
  } else {
    out = batch.clone();
  }
  // Per-image factors as [B, 1, 1, 1], built on the CPU and moved once.
  const auto factors = [&](double ImageParams::*field) {
    auto f = torch::empty({b, 1, 1, 1}, torch::kFloat);
    auto* data = f.data_ptr<float>();
    for (int64_t i = 0; i < b; ++i) data[i] = static_cast<float>(params[static_cast<size_t>(i)].*field);
    return f.to(batch.device());
  };
  // torchvision's adjust_brightness then adjust_contrast, each clamped as its _blend does.
  if (bright) out.mul_(factors(&ImageParams::brightness)).clamp_(0, 255);
  if (contrast) {
    const auto f = factors(&ImageParams::contrast);
    // The mean of the grey image (torchvision's rgb_to_grayscale weights), per image.
    const auto grey =
        out.size(1) == 3
            ? (out.select(1, 0) * 0.2989 + out.select(1, 1) * 0.587 + out.select(1, 2) * 0.114).unsqueeze(1)
            : out;
    const auto mean = grey.mean({1, 2, 3}, /*keepdim=*/true);
    out.mul_(f).add_(mean * (1 - f)).clamp_(0, 255);
  }
  return out;
}

}  // namespace augmentation

torch::Tensor augmentBatch(const torch::Tensor& batch, const AugmentConfig& config, Rng& rng) {
  checkAugmentConfig(config);
  checkBatch(batch);
  if (!config.enabled()) return batch;
  const int64_t b = batch.size(0), h = batch.size(2), w = batch.size(3);
  std::vector<augmentation::ImageParams> params;
  params.reserve(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) params.push_back(augmentation::drawParams(config, h, w, rng));
  return augmentation::applyParams(batch, params);
}

}  // namespace siamese::core
