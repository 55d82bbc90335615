// Tests of native/core/augment without Node: a plain executable, built on its own (augment.cc + LibTorch).
// Prints "N passed, N failed" and exits non-zero on any failure.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "../core/augment.h"
#include "../core/errors.h"
#include "../core/random.h"
#include "check.h"

namespace {

using siamese::test::check;
using siamese::test::checkThrows;

using namespace siamese::core;
namespace detail = siamese::core::augmentation;
using detail::AffineParams;
using detail::ImageParams;

constexpr double kPi = 3.14159265358979323846;

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// How far float32 resampling may stray from the exact pixel values, even where it samples exactly at pixel
// centres: grid_sample maps a coordinate x in [-1, 1] to ((x + 1) W - 1) / 2 in float, an error of a few
// 2^-24 W / 2 pixels, times neighbour differences of up to 255. 1e-4 at the sizes tested, more for wide images.
double tolerance(const torch::Tensor& batch) {
  return std::max(1e-4, 3e-5 * static_cast<double>(std::max(batch.size(2), batch.size(3))));
}

// Random pixel values in [lo, hi), from a torch generator of its own (the tests' inputs only).
torch::Tensor randomImages(std::vector<int64_t> shape, double lo = 0, double hi = 255, uint64_t seed = 1) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::rand(shape, gen, torch::kFloat) * (hi - lo) + lo;
}

// The same explicit geometry for every image of the batch.
torch::Tensor applyGeometry(const torch::Tensor& batch, const AffineParams& g) {
  ImageParams p;
  p.geometry = g;
  return detail::applyParams(batch, std::vector<ImageParams>(static_cast<size_t>(batch.size(0)), p));
}

void testConfigChecks() {
  AugmentConfig defaults;
  check(!defaults.enabled(), "the default config is the identity");
  checkAugmentConfig(defaults);
  check(true, "the default config passes its check");

  const std::vector<std::pair<std::string, std::function<void(AugmentConfig&)>>> on = {
      {"crop", [](AugmentConfig& c) { c.cropScaleMin = 0.5; }},
      {"flip", [](AugmentConfig& c) { c.flip = true; }},
      {"rotate", [](AugmentConfig& c) { c.rotate = 10; }},
      {"translate", [](AugmentConfig& c) { c.translate = 0.1; }},
      {"scaleMin", [](AugmentConfig& c) { c.scaleMin = 0.9; }},
      {"scaleMax", [](AugmentConfig& c) { c.scaleMax = 1.1; }},
      {"shear", [](AugmentConfig& c) { c.shear = 5; }},
      {"brightness", [](AugmentConfig& c) { c.brightness = 0.2; }},
      {"contrast", [](AugmentConfig& c) { c.contrast = 0.2; }},
  };
  for (const auto& [name, set] : on) {
    AugmentConfig c;
    set(c);
    check(c.enabled(), name + " enables augmentation");
    checkAugmentConfig(c);
  }
  AugmentConfig ratioOnly;
  ratioOnly.ratioMin = 0.5;
  check(!ratioOnly.enabled(), "the crop's ratio alone does nothing while the crop is off");

  AugmentConfig edges;
  edges.cropScaleMin = edges.cropScaleMax = 1e-3;
  edges.ratioMin = edges.ratioMax = 1;
  edges.rotate = 180;
  edges.translate = 1;
  edges.scaleMin = edges.scaleMax = 10;
  edges.shear = 89.9;
  edges.brightness = edges.contrast = 1;
  checkAugmentConfig(edges);
  check(true, "the ends of every range are accepted");

  const double nan = std::nan("");
  const std::vector<std::pair<std::string, std::function<void(AugmentConfig&)>>> bad = {
      {"cropScaleMin", [](AugmentConfig& c) { c.cropScaleMin = 0; }},
      {"cropScaleMin", [](AugmentConfig& c) { c.cropScaleMin = c.cropScaleMax = 1.5; }},
      {"cropScaleMax",
       [](AugmentConfig& c) {
         c.cropScaleMin = 0.5;
         c.cropScaleMax = 0.4;
       }},
      {"ratioMin", [](AugmentConfig& c) { c.ratioMin = 0; }},
      {"ratioMin", [&](AugmentConfig& c) { c.ratioMin = nan; }},
      {"ratioMax", [](AugmentConfig& c) { c.ratioMax = 0.5; }},
      {"ratioMax", [](AugmentConfig& c) { c.ratioMax = INFINITY; }},
      {"rotate", [](AugmentConfig& c) { c.rotate = -1; }},
      {"rotate", [](AugmentConfig& c) { c.rotate = 181; }},
      {"rotate", [&](AugmentConfig& c) { c.rotate = nan; }},
      {"translate", [](AugmentConfig& c) { c.translate = 1.5; }},
      {"translate", [](AugmentConfig& c) { c.translate = -0.1; }},
      {"scaleMin", [](AugmentConfig& c) { c.scaleMin = 0; }},
      {"scaleMax", [](AugmentConfig& c) { c.scaleMax = 0.5; }},
      {"scaleMax", [](AugmentConfig& c) { c.scaleMax = 11; }},
      {"shear", [](AugmentConfig& c) { c.shear = 90; }},
      {"shear", [](AugmentConfig& c) { c.shear = -5; }},
      {"brightness", [](AugmentConfig& c) { c.brightness = 1.5; }},
      {"brightness", [&](AugmentConfig& c) { c.brightness = nan; }},
      {"contrast", [](AugmentConfig& c) { c.contrast = -0.5; }},
  };
  for (const auto& [field, set] : bad) {
    AugmentConfig c;
    set(c);
    checkThrows<InvalidArgumentError>([&] { checkAugmentConfig(c); }, "a bad " + field + " is rejected", field);
    Rng rng(1);
    checkThrows<InvalidArgumentError>(
        [&] {
          augmentBatch(torch::zeros({1, 1, 4, 4}), c, rng);
        },
        "augmentBatch checks the config (" + field + ")", field);
  }
  Rng rng(1);
  AugmentConfig flip;
  flip.flip = true;
  checkThrows<c10::Error>([&] { augmentBatch(torch::zeros({1, 2, 4, 4}), flip, rng); }, "C must be 1 or 3");
  checkThrows<c10::Error>([&] { augmentBatch(torch::zeros({1, 4, 4}), flip, rng); }, "the batch must be 4D");
  checkThrows<c10::Error>(
      [&] {
        augmentBatch(torch::zeros({1, 1, 4, 4}, torch::kUInt8), flip, rng);
      },
      "the batch must be float32");
}

void testDisabledIsIdentity() {
  const auto batch = randomImages({3, 1, 5, 7});
  Rng rng(7), fresh(7);
  const auto out = augmentBatch(batch, AugmentConfig{}, rng);
  check(out.is_same(batch), "a disabled config returns the input tensor itself");
  check(rng.below(1000000) == fresh.below(1000000), "a disabled config draws nothing");
  const auto empty = torch::zeros({0, 3, 5, 7});
  AugmentConfig all;
  all.flip = true;
  all.rotate = 30;
  all.brightness = 0.5;
  check(augmentBatch(empty, all, rng).sizes() == empty.sizes(), "an empty batch stays empty");
}

void testIdentityResampleReproducesTheInput() {
  // align_corners = false puts the sampling points exactly on the pixel centres, borders included.
  const auto batch = randomImages({2, 3, 5, 8});
  const auto theta = torch::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 0.0}, torch::kDouble).reshape({1, 2, 3}).repeat({2, 1, 1});
  const auto out = detail::resample(batch, theta);
  check(out.sizes() == batch.sizes(), "resample keeps the shape");
  using torch::indexing::Slice;
  check(maxAbsDiff(out.index({Slice(), Slice(), Slice(1, -1), Slice(1, -1)}),
                   batch.index({Slice(), Slice(), Slice(1, -1), Slice(1, -1)})) < tolerance(batch),
        "the identity affine reproduces the centre");
  check(maxAbsDiff(out, batch) < tolerance(batch), "the identity affine reproduces the borders too");
  const auto m = detail::affineFor(AffineParams{}, 5, 8);
  check(m == std::array<double, 6>{1, 0, 0, 0, 1, 0}, "default AffineParams give the identity matrix");
  check(applyGeometry(batch, AffineParams{}).equal(batch), "identity params skip resampling: an exact copy");
}

void testFlip() {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{2, 1, 5, 7}, {2, 3, 5, 7}, {2, 3, 28, 100}}) {
    const auto batch = randomImages(shape);
    AffineParams flip;
    flip.flip = true;
    const auto out = applyGeometry(batch, flip);
    check(maxAbsDiff(out, torch::flip(batch, {3})) < tolerance(batch),
          "flip mirrors left-right, " + std::to_string(shape[1]) + " x " + std::to_string(shape[2]) + " x " +
              std::to_string(shape[3]));
  }
  // Through augmentBatch: each image is either mirrored or (resampled by the identity) unchanged.
  const auto batch = randomImages({16, 3, 6, 9});
  AugmentConfig config;
  config.flip = true;
  Rng rng(3);
  const auto out = augmentBatch(batch, config, rng);
  int flipped = 0, kept = 0;
  for (int64_t i = 0; i < 16; ++i) {
    if (maxAbsDiff(out[i], torch::flip(batch[i], {2})) < tolerance(batch)) ++flipped;
    if (maxAbsDiff(out[i], batch[i]) < tolerance(batch)) ++kept;
  }
  check(flipped + kept == 16, "every image is mirrored or kept");
  check(flipped > 0 && kept > 0, "both happen in 16 images");
}

void testCrop() {
  using torch::indexing::Slice;
  // The top-left quarter of a non-square image, blown up to the full size, is bilinear resizing of that
  // quarter (align_corners = false). They differ on the last row and column only: resizing clamps at the
  // quarter's edge where the crop reads the next pixel of the image.
  const auto batch = randomImages({2, 3, 6, 10});
  AffineParams crop;
  crop.cropWidth = crop.cropHeight = 0.5;
  const auto out = applyGeometry(batch, crop);
  namespace F = torch::nn::functional;
  const auto expected = F::interpolate(
      batch.index({Slice(), Slice(), Slice(0, 3), Slice(0, 5)}),
      F::InterpolateFuncOptions().size(std::vector<int64_t>{6, 10}).mode(torch::kBilinear).align_corners(false));
  check(maxAbsDiff(out.index({Slice(), Slice(), Slice(1, 5), Slice(1, 9)}),
                   expected.index({Slice(), Slice(), Slice(1, 5), Slice(1, 9)})) < 1e-3,
        "a crop of the top-left quarter shows that quarter enlarged");

  // The left half of a ramp: output column x reads input column x / 2 - 1/4.
  const int64_t h = 4, w = 8;
  const auto ramp = (torch::arange(w, torch::kFloat) * 10 + 5).expand({1, 1, h, w}).contiguous();
  AffineParams left;
  left.cropWidth = 0.5;
  const auto half = applyGeometry(ramp, left);
  bool ok = true;
  for (int64_t x = 1; x < w; ++x) {
    const double want = (static_cast<double>(x) / 2 - 0.25) * 10 + 5;
    ok = ok && (half.index({0, 0, Slice(), x}) - want).abs().max().item<double>() < 1e-3;
  }
  check(ok, "a crop of the left half shows the left half, twice as wide");

  // Through augmentBatch, area 1/4 and ratio 1 of an 8 x 8 image: a 4 x 4 box somewhere. On the gradients
  // 25 x (red) and 25 y (green) the output is 25 (left + x / 2 - 1/4) and 25 (top + y / 2 - 1/4) inside.
  const auto grid = torch::meshgrid({torch::arange(8, torch::kFloat), torch::arange(8, torch::kFloat)}, "ij");
  const auto gradient =
      torch::stack({grid[1] * 25, grid[0] * 25, torch::zeros({8, 8})}).expand({12, 3, 8, 8}).contiguous();
  AugmentConfig config;
  config.cropScaleMin = config.cropScaleMax = 0.25;
  config.ratioMin = config.ratioMax = 1;
  Rng rng(11);
  const auto cropped = augmentBatch(gradient, config, rng);
  bool planes = true, inside = true;
  std::vector<double> lefts;
  for (int64_t i = 0; i < 12; ++i) {
    // The box's corner from the pixel (1, 1), which reads (top + 1/4, left + 1/4), never outside the image.
    const double leftEdge = std::round(cropped.index({i, 0, 1, 1}).item<double>() / 25 - 0.25);
    const double top = std::round(cropped.index({i, 1, 1, 1}).item<double>() / 25 - 0.25);
    inside = inside && top >= 0 && top <= 4 && leftEdge >= 0 && leftEdge <= 4;
    lefts.push_back(leftEdge);
    for (int64_t y = 1; y < 7; ++y) {
      for (int64_t x = 1; x < 7; ++x) {
        const double wantX = 25 * (leftEdge + static_cast<double>(x) / 2 - 0.25);
        const double wantY = 25 * (top + static_cast<double>(y) / 2 - 0.25);
        planes = planes && std::abs(cropped.index({i, 0, y, x}).item<double>() - wantX) < 1e-3 &&
                 std::abs(cropped.index({i, 1, y, x}).item<double>() - wantY) < 1e-3 &&
                 cropped.index({i, 2, y, x}).item<double>() == 0;
      }
    }
  }
  check(inside, "every drawn 4 x 4 box lies in the image");
  check(planes, "each image is its box enlarged twice");
  check(*std::min_element(lefts.begin(), lefts.end()) != *std::max_element(lefts.begin(), lefts.end()),
        "the box moves from image to image");

  // Drawn boxes: in the image, area within the range, of an allowed ratio (up to rounding to pixels).
  AugmentConfig wide;
  wide.cropScaleMin = 0.08;
  wide.cropScaleMax = 0.9;
  Rng boxes(5);
  bool fits = true, areas = true;
  for (int i = 0; i < 500; ++i) {
    const auto g = detail::drawParams(wide, 60, 100, boxes).geometry;
    fits = fits && g.cropLeft >= 0 && g.cropTop >= 0 && g.cropLeft + g.cropWidth <= 1 + 1e-12 &&
           g.cropTop + g.cropHeight <= 1 + 1e-12 && g.cropWidth > 0 && g.cropHeight > 0;
    const double area = g.cropWidth * g.cropHeight;
    areas = areas && area > 0.08 * 0.8 && area < 0.9 * 1.2;
  }
  check(fits, "drawn crop boxes lie in the image");
  check(areas, "drawn crop boxes have about the drawn area");
  // A ratio that can never fit: the central crop of the nearest ratio (torchvision's fallback).
  AugmentConfig flat;
  flat.cropScaleMin = flat.cropScaleMax = 0.9;
  flat.ratioMin = flat.ratioMax = 10;
  Rng fallback(1);
  const auto g = detail::drawParams(flat, 20, 20, fallback).geometry;
  check(g.cropLeft == 0 && g.cropWidth == 1 && g.cropHeight == 2.0 / 20 && g.cropTop == 9.0 / 20,
        "after 10 misses, the central crop");
}

void testRotationTranslationScaleShear() {
  using torch::indexing::Slice;
  const auto square = randomImages({2, 3, 6, 6});
  AffineParams quarter;
  quarter.angle = 90;
  // torch::rot90 with k = 1 over (H, W) turns the displayed image counter-clockwise, as torchvision's rotate.
  check(maxAbsDiff(applyGeometry(square, quarter), torch::rot90(square, 1, {2, 3})) < tolerance(square),
        "+90 degrees turns counter-clockwise");
  quarter.angle = -90;
  check(maxAbsDiff(applyGeometry(square, quarter), torch::rot90(square, -1, {2, 3})) < tolerance(square),
        "-90 degrees turns clockwise");
  // Non-square: a quarter turn of a 4 x 8 image maps its central 4 x 4 square onto itself, turned. Only if the
  // aspect ratio is accounted for.
  const auto wide = randomImages({2, 1, 4, 8});
  quarter.angle = 90;
  const auto turned = applyGeometry(wide, quarter);
  check(maxAbsDiff(turned.index({Slice(), Slice(), Slice(), Slice(2, 6)}),
                   torch::rot90(wide.index({Slice(), Slice(), Slice(), Slice(2, 6)}), 1, {2, 3})) < tolerance(wide),
        "+90 degrees on a non-square image turns its centre");
  check(turned.index({Slice(), Slice(), Slice(), Slice(0, 2)}).abs().max().item<double>() == 0,
        "... and leaves the corners outside it empty");
  AffineParams half;
  half.angle = 180;
  const auto odd3 = randomImages({1, 3, 5, 7});
  check(maxAbsDiff(applyGeometry(odd3, half), torch::flip(odd3, {2, 3})) < tolerance(odd3),
        "180 degrees flips both axes");

  // Translation by 2/8 of the width moves the image 2 pixels right, zeros coming in on the left.
  const auto img = randomImages({1, 1, 5, 8}, 1, 255);
  AffineParams shift;
  shift.translateX = 2.0 / 8;
  shift.translateY = -1.0 / 5;
  const auto moved = applyGeometry(img, shift);
  check(maxAbsDiff(moved.index({Slice(), Slice(), Slice(0, 4), Slice(2, 8)}),
                   img.index({Slice(), Slice(), Slice(1, 5), Slice(0, 6)})) < tolerance(img),
        "translation moves right and up by whole pixels");
  check(moved.index({Slice(), Slice(), Slice(), Slice(0, 2)}).abs().max().item<double>() == 0 &&
            moved.index({Slice(), Slice(), 4, Slice()}).abs().max().item<double>() == 0,
        "translation brings in zeros");

  // Zoom by 2 is the crop of the central half.
  AffineParams zoom, centre;
  zoom.scale = 2;
  centre.cropLeft = centre.cropTop = 0.25;
  centre.cropWidth = centre.cropHeight = 0.5;
  const auto a = detail::affineFor(zoom, 6, 10), b = detail::affineFor(centre, 6, 10);
  bool same = true;
  for (size_t i = 0; i < 6; ++i) same = same && std::abs(a[i] - b[i]) < 1e-12;
  check(same, "a zoom of 2 reads the central half");

  // An x shear leaves the centre row alone (odd height: a row of pixel centres at y = 0) and slides the others.
  const auto odd = randomImages({1, 1, 7, 9}, 1, 255);
  AffineParams shear;
  shear.shear = 30;
  const auto sheared = applyGeometry(odd, shear);
  check(maxAbsDiff(sheared.index({0, 0, 3}), odd.index({0, 0, 3})) < tolerance(odd), "shear keeps the centre row");
  check(maxAbsDiff(sheared.index({0, 0, 0}), odd.index({0, 0, 0})) > 1, "shear moves the other rows");
  const auto m = detail::affineFor(shear, 7, 9);
  // Forward x' = x - tan(s) y in pixels, so the input read is x = x' + tan(s) y: in normalised units the
  // y coefficient is tan(s) H / W.
  check(std::abs(m[1] - std::tan(30 * kPi / 180) * 7 / 9) < 1e-12 && m[3] == 0, "the shear's matrix");

  // Composition order: crop is undone last. Flip after crop of the left half shows the left half mirrored.
  const auto ramp = (torch::arange(8, torch::kFloat) * 10 + 5).expand({1, 1, 4, 8}).contiguous();
  AffineParams both;
  both.cropWidth = 0.5;
  both.flip = true;
  const auto mirrored = applyGeometry(ramp, both);
  AffineParams leftOnly;
  leftOnly.cropWidth = 0.5;
  check(maxAbsDiff(mirrored, torch::flip(applyGeometry(ramp, leftOnly), {3})) < tolerance(ramp),
        "flip mirrors the cropped region, not the whole image");
}

void testDeterminism() {
  AugmentConfig config;
  config.cropScaleMin = 0.3;
  config.flip = true;
  config.rotate = 20;
  config.translate = 0.1;
  config.scaleMin = 0.8;
  config.scaleMax = 1.2;
  config.shear = 10;
  config.brightness = 0.3;
  config.contrast = 0.3;
  const auto batch = randomImages({6, 3, 12, 16});
  torch::manual_seed(1);
  Rng a(42, 3);
  const auto first = augmentBatch(batch, config, a);
  torch::manual_seed(999);  // torch's global generator plays no part
  Rng b(42, 3);
  const auto second = augmentBatch(batch, config, b);
  check(first.equal(second), "the same seed gives bit-identical output");
  check(a.below(1000000) == b.below(1000000), "and leaves the rng in the same state");
  Rng c(43, 3);
  check(!first.equal(augmentBatch(batch, config, c)), "another seed, another output");
  Rng d(42, 3);
  const auto again = augmentBatch(batch, config, d);
  check(!augmentBatch(batch, config, d).equal(again), "the next batch from the same rng differs");
  // Image order: image i's parameters are the i-th draw, so image 0 alone is augmented as in the batch.
  Rng e(42, 3);
  check(maxAbsDiff(augmentBatch(batch.narrow(0, 0, 1), config, e), first.narrow(0, 0, 1)) == 0,
        "the first image does not depend on the others");
}

void testColour() {
  // Extreme jitter stays within [0, 255].
  AugmentConfig strong;
  strong.brightness = 1;
  strong.contrast = 1;
  const auto full = randomImages({32, 3, 8, 8});
  Rng rng(9);
  const auto out = augmentBatch(full, strong, rng);
  check(out.min().item<double>() >= 0 && out.max().item<double>() <= 255, "colour jitter stays in [0, 255]");

  // Brightness only: no resampling at all, exactly x * factor (values in 20..100 never reach the clamp).
  const auto dim = randomImages({40, 1, 6, 9}, 20, 100);
  AugmentConfig bright;
  bright.brightness = 0.5;
  Rng r1(4), r2(4);
  const auto brighter = augmentBatch(dim, bright, r1);
  bool exact = true, ranged = true;
  double sum = 0;
  std::vector<double> factors;
  for (int64_t i = 0; i < 40; ++i) {
    const double f = detail::drawParams(bright, 6, 9, r2).brightness;
    ranged = ranged && f >= 0.5 && f <= 1.5;
    exact = exact && brighter[i].equal(dim[i] * static_cast<float>(f));
    const double ratio = brighter[i].mean().item<double>() / dim[i].mean().item<double>();
    sum += ratio;
    factors.push_back(ratio);
    ranged = ranged && std::abs(ratio - f) < 1e-5;
  }
  check(exact, "brightness alone is an exact multiplication (no resampling)");
  check(ranged, "each image's mean is scaled by its factor, in [0.5, 1.5]");
  check(std::abs(sum / 40 - 1) < 0.15, "the factors average about 1");
  check(*std::max_element(factors.begin(), factors.end()) - *std::min_element(factors.begin(), factors.end()) > 0.3,
        "the factors vary");

  // Contrast only, grey images: the mean stays, deviations from it scale by the factor.
  AugmentConfig contrast;
  contrast.contrast = 0.5;
  const auto mid = randomImages({20, 1, 7, 5}, 100, 150);
  Rng r3(8);
  const auto blended = augmentBatch(mid, contrast, r3);
  bool meanKept = true, scaled = true;
  for (int64_t i = 0; i < 20; ++i) {
    const auto m = mid[i].mean();
    meanKept = meanKept && std::abs(blended[i].mean().item<double>() - m.item<double>()) < 1e-3;
    const double f = (blended[i] - m).abs().sum().item<double>() / (mid[i] - m).abs().sum().item<double>();
    scaled = scaled && f >= 0.5 - 1e-5 && f <= 1.5 + 1e-5 && maxAbsDiff(blended[i] - m, (mid[i] - m) * f) < 1e-3;
  }
  check(meanKept, "contrast keeps each image's mean");
  check(scaled, "contrast scales deviations from the mean by a factor in [0.5, 1.5]");

  // Colour images: the grey mean (0.2989 r + 0.587 g + 0.114 b) is what stays.
  const auto rgb = randomImages({10, 3, 6, 4}, 100, 150);
  Rng r4(2);
  const auto rgbOut = augmentBatch(rgb, contrast, r4);
  const auto greyMean = [](const torch::Tensor& t) {
    return (t.select(1, 0) * 0.2989 + t.select(1, 1) * 0.587 + t.select(1, 2) * 0.114).mean({1, 2});
  };
  check(maxAbsDiff(greyMean(rgbOut), greyMean(rgb)) < 0.05, "contrast keeps the grey mean of colour images");
  check(maxAbsDiff(rgbOut, rgb) > 1, "contrast changes colour images");
}

void testShapes() {
  AugmentConfig config;
  config.cropScaleMin = 0.5;
  config.flip = true;
  config.rotate = 15;
  config.translate = 0.1;
  config.scaleMin = 0.9;
  config.scaleMax = 1.1;
  config.shear = 5;
  config.brightness = 0.2;
  config.contrast = 0.2;
  for (const int64_t c : {1, 3}) {
    for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{28, 28}, {20, 36}, {37, 15}}) {
      const auto batch = randomImages({4, c, h, w});
      Rng rng(static_cast<uint64_t>(c * 1000 + h));
      const auto out = augmentBatch(batch, config, rng);
      const std::string what = "C = " + std::to_string(c) + ", " + std::to_string(h) + " x " + std::to_string(w);
      check(out.sizes() == batch.sizes() && out.scalar_type() == torch::kFloat && out.device() == batch.device(),
            what + ": same shape, dtype and device");
      check(out.min().item<double>() >= 0 && out.max().item<double>() <= 255, what + ": values in [0, 255]");
      check(!out.is_same(batch) && maxAbsDiff(out, batch) > 1, what + ": a new, changed tensor");
      check(std::isfinite(out.sum().item<double>()), what + ": finite");
    }
  }
}

}  // namespace

int main() {
  testConfigChecks();
  testDisabledIsIdentity();
  testIdentityResampleReproducesTheInput();
  testFlip();
  testCrop();
  testRotationTranslationScaleShear();
  testDeterminism();
  testColour();
  testShapes();
  return siamese::test::summary();
}
