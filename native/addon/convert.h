// Small conversions between JavaScript values and C++ values. lib/ has validated every argument
// before it gets here; these checks only keep a misuse of the raw addon from crashing.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <napi.h>
#include <torch/torch.h>

namespace siamese::addon {

// A float tensor (any device, dtype and layout) as a new Float32Array.
inline Napi::Float32Array toFloat32Array(Napi::Env env, const torch::Tensor& t) {
  const torch::Tensor cpu = t.to(torch::kCPU, torch::kFloat).contiguous();
  Napi::Float32Array out = Napi::Float32Array::New(env, static_cast<size_t>(cpu.numel()));
  std::memcpy(out.Data(), cpu.data_ptr<float>(), static_cast<size_t>(cpu.numel()) * sizeof(float));
  return out;
}

inline Napi::TypeError argError(Napi::Env env, const std::string& what) {
  return Napi::TypeError::New(env, "siamese-torch addon: expected " + what);
}

inline std::string stringArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsString())
    throw argError(info.Env(), "a string as argument " + std::to_string(i));
  return info[i].As<Napi::String>().Utf8Value();
}

inline double numberArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw argError(info.Env(), "a number as argument " + std::to_string(i));
  return info[i].As<Napi::Number>().DoubleValue();
}

inline Napi::Int32Array int32ArrayArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw argError(info.Env(), "an Int32Array as argument " + std::to_string(i));
  }
  return info[i].As<Napi::Int32Array>();
}

template <typename T>
Napi::Int32Array toInt32Array(Napi::Env env, const std::vector<T>& values) {
  Napi::Int32Array out = Napi::Int32Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<int32_t>(values[i]);
  return out;
}

// Argument `i`: a Float32Array of rows of `dims` values, copied into a float tensor [rows, dims].
inline torch::Tensor floatRowsArg(const Napi::CallbackInfo& info, size_t i, int64_t dims) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw argError(info.Env(), "a Float32Array as argument " + std::to_string(i));
  }
  const auto values = info[i].As<Napi::Float32Array>();
  const auto n = static_cast<int64_t>(values.ElementLength());
  if (dims < 1 || n % dims != 0) throw argError(info.Env(), "rows of " + std::to_string(dims) + " values");
  torch::Tensor out = torch::empty({n / dims, dims}, torch::kFloat);
  if (n > 0) std::memcpy(out.data_ptr<float>(), values.Data(), static_cast<size_t>(n) * sizeof(float));
  return out;
}

// Argument `i`: a Float64Array of whole numbers (database ids), as int64s.
inline std::vector<int64_t> idsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsTypedArray() ||
      info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw argError(info.Env(), "a Float64Array of ids as argument " + std::to_string(i));
  }
  const auto values = info[i].As<Napi::Float64Array>();
  std::vector<int64_t> ids(values.ElementLength());
  for (size_t k = 0; k < ids.size(); ++k) {
    const double v = values[k];
    if (!(v >= -9007199254740991.0 && v <= 9007199254740991.0) || v != static_cast<double>(static_cast<int64_t>(v))) {
      throw argError(info.Env(), "whole-number ids");
    }
    ids[k] = static_cast<int64_t>(v);
  }
  return ids;
}

// An int64 tensor as a new Float64Array (ids within 2^53).
inline Napi::Float64Array toFloat64Array(Napi::Env env, const torch::Tensor& t) {
  const torch::Tensor cpu = t.to(torch::kCPU, torch::kDouble).contiguous();
  Napi::Float64Array out = Napi::Float64Array::New(env, static_cast<size_t>(cpu.numel()));
  if (cpu.numel() > 0)
    std::memcpy(out.Data(), cpu.data_ptr<double>(), static_cast<size_t>(cpu.numel()) * sizeof(double));
  return out;
}

}  // namespace siamese::addon
