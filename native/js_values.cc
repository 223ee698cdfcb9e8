#include "js_values.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "errors.h"

namespace crackseg {
namespace {

struct DtypeInfo {
  const char* name;
  c10::ScalarType scalar;
  napi_typedarray_type array;
  const char* arrayName;
};

// The dtypes JS can hold, and the typed array that holds each (16-bit floats as raw bits).
constexpr DtypeInfo kDtypes[] = {
    {"float32", c10::ScalarType::Float, napi_float32_array, "Float32Array"},
    {"float64", c10::ScalarType::Double, napi_float64_array, "Float64Array"},
    {"float16", c10::ScalarType::Half, napi_uint16_array, "Uint16Array"},
    {"bfloat16", c10::ScalarType::BFloat16, napi_uint16_array, "Uint16Array"},
    {"int32", c10::ScalarType::Int, napi_int32_array, "Int32Array"},
    {"int64", c10::ScalarType::Long, napi_bigint64_array, "BigInt64Array"},
    {"uint8", c10::ScalarType::Byte, napi_uint8_array, "Uint8Array"},
    {"bool", c10::ScalarType::Bool, napi_uint8_array, "Uint8Array"},
};

const DtypeInfo* FindDtype(const std::string& name) {
  for (const auto& info : kDtypes)
    if (name == info.name) return &info;
  return nullptr;
}

const DtypeInfo* FindDtype(c10::ScalarType scalar) {
  for (const auto& info : kDtypes)
    if (scalar == info.scalar) return &info;
  return nullptr;
}

// More elements than any tensor here can hold; also keeps the element count far from overflow.
constexpr int64_t kMaxElements = int64_t{1} << 40;

[[noreturn]] void FailArgument(const std::string& what, const std::string& message) {
  ThrowTypeError(TypeCode::kArgument, what + ": " + message);
}

[[noreturn]] void FailDtype(const std::string& what, const std::string& message) {
  ThrowTypeError(TypeCode::kDtype, what + ": " + message);
}

[[noreturn]] void FailShape(const std::string& what, const std::string& message) {
  ThrowRangeError(RangeCode::kShape, what + ": " + message);
}

[[noreturn]] void FailRange(const std::string& what, const std::string& message) {
  ThrowRangeError(RangeCode::kRange, what + ": " + message);
}

std::string JsTypeName(const Napi::Value& value) {
  if (value.IsNull()) return "null";
  if (value.IsUndefined()) return "undefined";
  if (value.IsArray()) return "an array";
  if (value.IsTypedArray()) return "a typed array";
  if (value.IsNumber()) return "a number";
  if (value.IsBigInt()) return "a bigint";
  if (value.IsBoolean()) return "a boolean";
  if (value.IsString()) return "a string";
  if (value.IsObject()) return "an object";
  return "an unsupported value";
}

int64_t IntFromJs(const Napi::Value& value, const std::string& what) {
  if (value.IsBigInt()) {
    bool lossless = true;
    int64_t result = value.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) FailRange(what, "bigint out of int64 range");
    return result;
  }
  if (value.IsNumber()) {
    double number = value.As<Napi::Number>().DoubleValue();
    // 2^63 is exactly representable; anything at or beyond it (or NaN) does not fit int64.
    constexpr double kLimit = 9223372036854775808.0;
    if (!(number >= -kLimit && number < kLimit) || number != std::floor(number))
      FailRange(what, "expected an integer, got " + std::to_string(number));
    return static_cast<int64_t>(number);
  }
  FailArgument(what, "expected an integer, got " + JsTypeName(value));
}

}  // namespace

int64_t IntegerFromJs(const Napi::Value& value, int64_t minimum, int64_t maximum,
                      const std::string& what) {
  if (!value.IsNumber()) FailArgument(what, "expected an integer, got " + JsTypeName(value));
  int64_t integer = IntFromJs(value, what);
  if (integer < minimum || integer > maximum)
    FailRange(what, "must lie in [" + std::to_string(minimum) + ", " + std::to_string(maximum) +
                        "], got " + std::to_string(integer));
  return integer;
}

std::string StringArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  if (info.Length() <= index || !info[index].IsString())
    ThrowTypeError(TypeCode::kArgument, std::string(name) + " must be a string");
  return info[index].As<Napi::String>();
}

c10::ScalarType FloatingDtype(const std::string& name) {
  const DtypeInfo* info = FindDtype(name);
  if (!info || !c10::isFloatingType(info->scalar))
    ThrowTypeError(TypeCode::kDtype,
                   "dtype must be float32, float64, bfloat16 or float16, got '" + name + "'");
  return info->scalar;
}

std::string DtypeName(c10::ScalarType type) {
  const DtypeInfo* info = FindDtype(type);
  if (!info)
    ThrowTypeError(TypeCode::kDtype,
                   std::string("dtype ") + c10::toString(type) + " has no JS form");
  return info->name;
}

namespace {

// A checked JS tensor's data seen in place: `data` as stored (bool as its uint8 bytes).
struct JsTensorView {
  torch::Tensor data;
  c10::ScalarType dtype;
};

JsTensorView ViewOfJs(const Napi::Value& value, const std::string& what) {
  if (!value.IsObject() || value.IsArray())
    FailArgument(what, "expected a tensor {data, shape, dtype}, got " + JsTypeName(value));
  Napi::Object object = value.As<Napi::Object>();

  Napi::Value dtypeValue = object.Get("dtype");
  if (!dtypeValue.IsString()) FailArgument(what, "dtype must be a string");
  std::string dtypeName = dtypeValue.As<Napi::String>();
  const DtypeInfo* dtype = FindDtype(dtypeName);
  if (!dtype) FailDtype(what, "unsupported dtype '" + dtypeName + "'");

  Napi::Value shapeValue = object.Get("shape");
  if (!shapeValue.IsArray()) FailArgument(what, "shape must be an array of sizes");
  Napi::Array shapeArray = shapeValue.As<Napi::Array>();
  std::vector<int64_t> shape;
  int64_t count = 1;
  for (uint32_t i = 0; i < shapeArray.Length(); ++i) {
    int64_t size = IntFromJs(shapeArray.Get(i), what + ".shape[" + std::to_string(i) + "]");
    if (size < 0) FailShape(what, "negative size in shape");
    shape.push_back(size);
    if (__builtin_mul_overflow(count, size, &count) || count > kMaxElements)
      FailShape(what, "shape has more than 2^40 elements");
  }

  Napi::Value dataValue = object.Get("data");
  if (!dataValue.IsTypedArray())
    FailArgument(what, "data must be a " + std::string(dtype->arrayName));
  Napi::TypedArray data = dataValue.As<Napi::TypedArray>();
  if (data.TypedArrayType() != dtype->array)
    FailArgument(what, "dtype " + dtypeName + " needs data as a " + dtype->arrayName);
  if (static_cast<int64_t>(data.ElementLength()) != count)
    FailShape(what, "data has " + std::to_string(data.ElementLength()) +
                        " elements but shape needs " + std::to_string(count));

  // JS booleans arrive as bytes.
  c10::ScalarType stored = dtype->scalar == c10::ScalarType::Bool ? torch::kUInt8 : dtype->scalar;
  if (count == 0) return {torch::empty(shape, torch::dtype(stored)), dtype->scalar};
  auto* bytes = static_cast<uint8_t*>(data.ArrayBuffer().Data()) + data.ByteOffset();
  return {torch::from_blob(bytes, shape, torch::dtype(stored)), dtype->scalar};
}

void CheckRank(const torch::Tensor& tensor, int64_t rank, const std::string& what) {
  if (tensor.dim() != rank)
    FailShape(what, "must have " + std::to_string(rank) + " dimensions, got shape " +
                        c10::str(tensor.sizes()));
}

}  // namespace

torch::Tensor TensorFromJs(const Napi::Value& value, const std::string& what) {
  JsTensorView view = ViewOfJs(value, what);
  return view.dtype == c10::ScalarType::Bool ? view.data.ne(0) : view.data.clone();
}

torch::Tensor TensorFromJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                           const std::string& what) {
  torch::Tensor tensor = TensorFromJs(value, what);
  if (tensor.scalar_type() != dtype)
    FailDtype(what, "must be " + DtypeName(dtype) + ", got " + DtypeName(tensor.scalar_type()));
  CheckRank(tensor, rank, what);
  return tensor;
}

torch::Tensor TensorViewOfJs(const Napi::Value& value, c10::ScalarType dtype, int64_t rank,
                             const std::string& what) {
  JsTensorView view = ViewOfJs(value, what);
  if (view.dtype != dtype)
    FailDtype(what, "must be " + DtypeName(dtype) + ", got " + DtypeName(view.dtype));
  CheckRank(view.data, rank, what);
  return view.data;
}

PromptTensors PromptsFromJs(const Napi::Value& value, int64_t batchSize, const std::string& what) {
  if (!value.IsObject()) FailArgument(what, "expected {coords, labels, imageIndex}");
  Napi::Object object = value.As<Napi::Object>();
  PromptTensors prompts{
      TensorFromJs(object.Get("coords"), c10::ScalarType::Float, 3, what + ".coords"),
      TensorFromJs(object.Get("labels"), c10::ScalarType::Int, 2, what + ".labels"),
      TensorFromJs(object.Get("imageIndex"), c10::ScalarType::Long, 1, what + ".imageIndex"),
  };
  int64_t n = prompts.coords.size(0);
  if (prompts.coords.size(2) != 2) FailShape(what, "coords must be [N, P, 2]");
  if (prompts.labels.sizes() != prompts.coords.sizes().slice(0, 2))
    FailShape(what, "labels " + c10::str(prompts.labels.sizes()) + " must be [N, P] of coords " +
                        c10::str(prompts.coords.sizes()));
  if (prompts.imageIndex.size(0) != n) FailShape(what, "imageIndex must have N entries");
  if (n > 0 && (prompts.imageIndex.min().item<int64_t>() < 0 ||
                prompts.imageIndex.max().item<int64_t>() >= batchSize))
    FailRange(what, "imageIndex must lie in [0, " + std::to_string(batchSize) + ")");
  return prompts;
}

c10::IValue IValueFromJs(const Napi::Value& value, const c10::TypePtr& type,
                         const std::string& what) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return TensorFromJs(value, what);
    case c10::TypeKind::OptionalType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      return IValueFromJs(value, type->castRaw<c10::OptionalType>()->getElementType(), what);
    case c10::TypeKind::NoneType:
      if (value.IsNull() || value.IsUndefined()) return c10::IValue();
      FailArgument(what, "expected null, got " + JsTypeName(value));
    case c10::TypeKind::IntType:
      return IntFromJs(value, what);
    case c10::TypeKind::FloatType:
      if (!value.IsNumber()) FailArgument(what, "expected a number, got " + JsTypeName(value));
      return value.As<Napi::Number>().DoubleValue();
    case c10::TypeKind::NumberType:
      if (value.IsBigInt()) return IntFromJs(value, what);
      if (!value.IsNumber()) FailArgument(what, "expected a number, got " + JsTypeName(value));
      return value.As<Napi::Number>().DoubleValue();
    case c10::TypeKind::BoolType:
      if (!value.IsBoolean()) FailArgument(what, "expected a boolean, got " + JsTypeName(value));
      return value.As<Napi::Boolean>().Value();
    case c10::TypeKind::StringType:
      if (!value.IsString()) FailArgument(what, "expected a string, got " + JsTypeName(value));
      return value.As<Napi::String>().Utf8Value();
    case c10::TypeKind::TupleType: {
      const auto& elements = type->castRaw<c10::TupleType>()->elements();
      if (!value.IsArray() || value.As<Napi::Array>().Length() != elements.size())
        FailArgument(what,
                     "expected an array of " + std::to_string(elements.size()) + " (a tuple)");
      Napi::Array array = value.As<Napi::Array>();
      std::vector<c10::IValue> items;
      for (uint32_t i = 0; i < elements.size(); ++i)
        items.push_back(
            IValueFromJs(array.Get(i), elements[i], what + "[" + std::to_string(i) + "]"));
      return c10::ivalue::Tuple::create(std::move(items));
    }
    case c10::TypeKind::ListType: {
      if (!value.IsArray())
        FailArgument(what, "expected an array (a list), got " + JsTypeName(value));
      const c10::TypePtr& element = type->castRaw<c10::ListType>()->getElementType();
      Napi::Array array = value.As<Napi::Array>();
      c10::impl::GenericList list(element);
      for (uint32_t i = 0; i < array.Length(); ++i)
        list.push_back(IValueFromJs(array.Get(i), element, what + "[" + std::to_string(i) + "]"));
      return list;
    }
    default:
      FailArgument(what, "arguments of TorchScript type " + type->str() + " are not supported");
  }
}

Napi::Object TensorToJs(Napi::Env env, const torch::Tensor& tensor) {
  const DtypeInfo* dtype = FindDtype(tensor.scalar_type());
  if (!dtype)
    ThrowTypeError(TypeCode::kDtype, std::string("output dtype ") +
                                         c10::toString(tensor.scalar_type()) + " has no JS form");
  torch::Tensor host = tensor.detach().to(torch::kCPU).contiguous();
  size_t count = static_cast<size_t>(host.numel());
  size_t bytes = count * host.element_size();
  Napi::ArrayBuffer buffer = Napi::ArrayBuffer::New(env, bytes);
  if (bytes > 0) std::memcpy(buffer.Data(), host.data_ptr(), bytes);
  Napi::Value data;
  switch (dtype->array) {
    case napi_float32_array:
      data = Napi::Float32Array::New(env, count, buffer, 0);
      break;
    case napi_float64_array:
      data = Napi::Float64Array::New(env, count, buffer, 0);
      break;
    case napi_uint16_array:
      data = Napi::Uint16Array::New(env, count, buffer, 0);
      break;
    case napi_int32_array:
      data = Napi::Int32Array::New(env, count, buffer, 0);
      break;
    case napi_bigint64_array:
      data = Napi::BigInt64Array::New(env, count, buffer, 0);
      break;
    default:
      data = Napi::Uint8Array::New(env, count, buffer, 0);
  }
  Napi::Array shape = Napi::Array::New(env, host.dim());
  for (int64_t i = 0; i < host.dim(); ++i) shape.Set(i, Napi::Number::New(env, host.size(i)));
  Napi::Object result = Napi::Object::New(env);
  result.Set("data", data);
  result.Set("shape", shape);
  result.Set("dtype", dtype->name);
  return result;
}

Napi::Array TensorRowsToJs(Napi::Env env, const torch::Tensor& tensor) {
  std::vector<torch::Tensor> rows = tensor.unbind(0);
  Napi::Array array = Napi::Array::New(env, rows.size());
  for (size_t i = 0; i < rows.size(); ++i) array.Set(i, TensorToJs(env, rows[i]));
  return array;
}

Napi::Value IValueToJs(Napi::Env env, const c10::IValue& value) {
  if (value.isTensor()) return TensorToJs(env, value.toTensor());
  if (value.isNone()) return env.Null();
  if (value.isBool()) return Napi::Boolean::New(env, value.toBool());
  if (value.isInt()) {
    // Numbers hold integers exactly up to 2^53; beyond that the value comes back as a bigint.
    int64_t integer = value.toInt();
    constexpr int64_t kSafe = (int64_t{1} << 53) - 1;
    if (integer > kSafe || integer < -kSafe) return Napi::BigInt::New(env, integer);
    return Napi::Number::New(env, static_cast<double>(integer));
  }
  if (value.isDouble()) return Napi::Number::New(env, value.toDouble());
  if (value.isString()) return Napi::String::New(env, value.toStringRef());
  if (value.isTuple() || value.isList()) {
    std::vector<c10::IValue> items;
    if (value.isTuple()) {
      const auto& elements = value.toTupleRef().elements();
      items.assign(elements.begin(), elements.end());
    } else {
      items = value.toList().vec();
    }
    Napi::Array array = Napi::Array::New(env, items.size());
    for (size_t i = 0; i < items.size(); ++i) array.Set(i, IValueToJs(env, items[i]));
    return array;
  }
  ThrowTypeError(TypeCode::kArgument, "output of type " + value.tagKind() + " has no JS form");
}

}  // namespace crackseg
