// Seeded image augmentation for training batches. Every random draw comes from our Rng (never a std::
// distribution nor torch's global generator), so a given seed gives the same draws on every platform and
// whatever torch::manual_seed says (what is derived from them through log/exp/sin/cos can still differ in the
// last bit between C libraries). All geometric ops of an image are composed into one affine map and the batch
// is resampled once, so crop, flip, rotation, etc. cost one interpolation, not one each.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include <torch/torch.h>

#include "random.h"

namespace siamese::core {

struct AugmentConfig {
  // Random resized crop (torchvision's RandomResizedCrop semantics): area fraction drawn
  // uniformly in [cropScaleMin, cropScaleMax], log aspect ratio uniform in [log(ratioMin), log(ratioMax)];
  // up to 10 tries to fit the box in the image, else the central crop; the box is then resized to the full image.
  // Off when cropScaleMin == cropScaleMax == 1.
  double cropScaleMin = 1, cropScaleMax = 1, ratioMin = 3.0 / 4, ratioMax = 4.0 / 3;
  bool flip = false;                  // horizontal flip with probability 1/2
  double rotate = 0;                  // degrees: uniform in [-rotate, rotate], positive = counter-clockwise
  double translate = 0;               // fraction of width/height: uniform in [-translate, translate] each axis
  double scaleMin = 1, scaleMax = 1;  // zoom factor uniform in [scaleMin, scaleMax]
  double shear = 0;                   // degrees, x shear uniform in [-shear, shear]
  double brightness = 0;              // multiply by a factor uniform in [1 - b, 1 + b]
  double contrast = 0;  // blend with the image's mean grey by a factor uniform in [1 - c, 1 + c] (adjust_contrast)

  bool enabled() const;  // any of the above is not the identity
};

// Checks ranges (0 < cropScaleMin <= cropScaleMax <= 1, 0 < ratioMin <= ratioMax, 0 <= rotate <= 180,
// 0 <= translate <= 1, 0 < scaleMin <= scaleMax <= 10, 0 <= shear < 90, 0 <= brightness <= 1, 0 <= contrast <= 1),
// InvalidArgumentError naming the field otherwise. NaN fails every check.
void checkAugmentConfig(const AugmentConfig& c);

// batch: float32 [B, C, H, W] (C = 1 or 3) of pixel values in 0..255, on any device. Returns a new tensor of
// the same shape, device and dtype, values in 0..255. Draws every image's parameters from `rng` in image order
// (the same rng state gives the same output), composes crop, flip, rotation, translation, scale and shear into
// one 2x3 affine matrix per image and resamples once (bilinear, align_corners false, zero padding), then
// brightness and contrast per image, each clamped to [0, 255]. No resampling when every image's geometry is
// the identity (e.g. only colour jitter is on). Returns `batch` itself when !config.enabled().
torch::Tensor augmentBatch(const torch::Tensor& batch, const AugmentConfig& config, Rng& rng);

// The pieces of augmentBatch, exposed so that tests can apply explicit parameters.
namespace augmentation {

// One image's geometry, as forward operations applied in this order: crop (then resize to the full image),
// horizontal flip, then torchvision's affine about the centre (shear, scale, rotation, translation).
struct AffineParams {
  // The crop box in fractions of the image: left/top edge and width/height. The defaults are the whole image.
  double cropLeft = 0, cropTop = 0, cropWidth = 1, cropHeight = 1;
  bool flip = false;
  double angle = 0;                       // degrees, counter-clockwise as displayed (y down)
  double translateX = 0, translateY = 0;  // fractions of the width and the height; +x right, +y down
  double scale = 1;                       // > 1 enlarges
  double shear = 0;                       // degrees: x' = x - tan(shear) * y about the centre (torchvision's SHx)

  bool identity() const;
};

struct ImageParams {
  AffineParams geometry;
  double brightness = 1;  // factors; 1 leaves the image as it is
  double contrast = 1;
};

// The 2x3 matrix, row-major, that maps an output pixel's normalised coordinates (x, y in [-1, 1], as
// affine_grid with align_corners = false makes them) to the input position it samples.
std::array<double, 6> affineFor(const AffineParams& p, int64_t height, int64_t width);

// One image's parameters, drawn from rng in a fixed order: crop, flip, angle, translateX, translateY, scale,
// shear, brightness, contrast; only the ops that `config` turns on draw anything.
ImageParams drawParams(const AugmentConfig& config, int64_t height, int64_t width, Rng& rng);

// Resamples batch [B, C, H, W] with one 2x3 matrix per image, theta [B, 2, 3] (any device, any float dtype).
torch::Tensor resample(const torch::Tensor& batch, const torch::Tensor& theta);

// Applies params[i] to image i: geometry (skipped when every image's is the identity), then colour (skipped
// when every factor is 1). Always returns a new tensor.
torch::Tensor applyParams(const torch::Tensor& batch, const std::vector<ImageParams>& params);

}  // namespace augmentation

}  // namespace siamese::core
